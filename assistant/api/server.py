"""One ASGI app on one port: the ``/v1`` API beside the Gradio app, and its server.

The API is mounted first, at ``/v1``, and Gradio at ``/`` with ``gr.mount_gradio_app``
(Gradio's documented way to live inside another FastAPI app); Starlette tries mounts in
order, so ``/v1/...`` reaches the API and everything else reaches Gradio, whose login,
queue and file routes work as under ``demo.launch``. The Gradio login guards the web
app only: the API checks its own bearer keys (assistant/api/auth.py).

uvicorn serves it: in the calling thread until SIGTERM or SIGINT (``python app.py``,
``assistant serve``), or in a background thread for tests (``Server.start``). On the first
signal ``on_stop`` runs at once (the app ends its answers in flight) and Gradio's event
streams end, so uvicorn's graceful shutdown finds little to wait for; ``run`` then returns
normally, for an exit status of 0 (uvicorn alone would raise the signal again).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

API_PREFIX = "/v1"
METRICS_PATH = "/metrics"
START_TIMEOUT_S = 30.0


def combine(api: FastAPI | None, demo: Any, **gradio_options: Any) -> FastAPI:
    """A FastAPI app with ``api`` (if any) at /v1 and its metrics at /metrics, and the
    Gradio ``demo`` at / (options go to ``gr.mount_gradio_app``: auth, theme, css,
    max_file_size, app_kwargs, ...)."""
    import gradio as gr

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    if api is not None:
        app.mount(API_PREFIX, api)
        metrics = getattr(api.state, "metrics", None)  # Prometheus' scrape (api/metrics.py)
        if metrics is not None:
            app.add_route(METRICS_PATH, metrics, methods=["GET"])
    return gr.mount_gradio_app(app, demo, path="/", **gradio_options)


def public_url(host: str, port: int) -> str:
    """The URL a client on this machine uses (0.0.0.0 and :: listen everywhere)."""
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}"


class _Uvicorn(uvicorn.Server):
    """uvicorn that calls ``on_stop`` on the first SIGTERM/SIGINT and then returns."""

    on_stop: Callable[[], None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not self.should_exit
        super().handle_exit(sig, frame)
        # A stop by signal is this server's normal end: not re-raised after shutdown.
        self._captured_signals.clear()
        if first:
            _end_gradio_streams(self.config.app)
            if self.on_stop is not None:
                self.on_stop()


class Server:
    """uvicorn over one app; ``url`` is the web app, ``api_url`` the OpenAI base URL."""

    def __init__(self, app: FastAPI, host: str, port: int,
                 on_stop: Callable[[], None] | None = None) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                access_log=False, timeout_graceful_shutdown=3)
        self.server = _Uvicorn(config)
        self.server.on_stop = on_stop
        self.url = public_url(host, port)
        self.api_url = self.url + API_PREFIX
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve in this thread until SIGTERM or SIGINT; returns after a graceful shutdown."""
        self.server.run()

    def start(self) -> Server:
        """Serve in a background thread; returns once the port accepts connections."""
        self._thread = threading.Thread(target=self.server.run, name="strata-server",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on {self.url} (port in use?)")
            time.sleep(0.02)
        return self

    def close(self) -> None:
        """Stop serving and wait for the server thread (open streams get a few seconds)."""
        _end_gradio_streams(self.server.config.app)
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def _end_gradio_streams(app: Any) -> None:
    """Gradio's event streams (its queue's SSE) end only when its app's stop event is set,
    as ``Blocks.close`` does for ``launch()``; otherwise shutdown waits out its timeout."""
    for route in getattr(app, "routes", ()):
        stop = getattr(getattr(route, "app", None), "stop_event", None)
        if stop is not None:
            stop.set()
