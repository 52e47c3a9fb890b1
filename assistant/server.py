"""The server: the web app (``assistant.ui``) and the OpenAI-compatible API
(``assistant.api``) on one port. It sits above both; neither imports the other.

``serve()`` is what ``python app.py`` and ``assistant serve`` run: prepare the services
(demo knowledge, model loaded once), build both apps, serve until SIGTERM or SIGINT, stop
cleanly. ``launch`` serves an app already built (tests pass a tiny model's).

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

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import gradio as gr
import uvicorn
from fastapi import FastAPI

from assistant.access import Access
from assistant.ui.app import CSS, UPLOAD_CACHE_LIFETIME, build_app
from assistant.ui.files import Exports, check_not_served, guard_middleware, keep_uploads_swept

if TYPE_CHECKING:
    from assistant.services import Services
    from assistant.settings import Settings

log = logging.getLogger(__name__)
API_PREFIX = "/v1"
METRICS_PATH = "/metrics"
START_TIMEOUT_S = 30.0
DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 7860
# Docker, Spaces and Kubernetes kill a container about 10 s after SIGTERM: whatever still
# runs by then (a training step, a stuck client) is cut here first, after the stores closed.
STOP_DEADLINE_S = 8.0
TRAINING_WAIT_S = 3.0  # of that, for a training run to reach the end of its step


def combine(api: FastAPI | None, demo: gr.Blocks, **gradio_options: Any) -> FastAPI:
    """A FastAPI app with ``api`` (if any) at /v1 and its metrics at /metrics, and the
    Gradio ``demo`` at / (options go to ``gr.mount_gradio_app``: auth, theme, css,
    max_file_size, app_kwargs, ...)."""
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


def prepare(services: Services) -> None:
    """What the app needs before its first visitor: demo documents, the model, loaded once."""
    from assistant.backends.base import describe_settings
    from assistant.retrieval.ingest import ensure_demo_knowledge

    s = services.settings
    started = time.perf_counter()
    log.info("preparing the %s backend...", describe_settings(s))
    # The configured backend, never the local generator: with a remote one (vLLM) no model
    # may load here; the local one builds the base model and the adapter manager, once.
    services.backend  # noqa: B018
    log.info("knowledge base: checking for documents...")
    results = ensure_demo_knowledge(s, services.store, progress=_log_progress)
    if results:
        chunks = sum(r.chunks for r in results)
        log.info("ingested %d demo files (%d chunks)", len(results), chunks)
    services.embedder.embed_query("warm up")
    services.router  # noqa: B018  # reads adapter profiles
    _warm_reranker(services)
    log.info("ready in %.1f s", time.perf_counter() - started)


def _warm_reranker(services: Services) -> None:
    """When answers are re-ranked, a scorer that keeps state (llama.cpp's context) makes
    it now rather than in the first visitor's answer; others have nothing to warm."""
    from assistant.models.profiles import resolve

    if not resolve(services.settings).reranks:
        return
    warm: Callable[[], None] | None = getattr(services.reranker, "warm", None)
    if warm is not None:
        started = time.perf_counter()
        warm()
        log.info("re-ranker warmed in %.1f s", time.perf_counter() - started)


def _log_progress(done: int, total: int, name: str) -> None:
    log.info("demo knowledge: %d/%d %s", done, total, name)


def resolve_port(port: int | None = None) -> int:
    """--port, else $PORT (Spaces, most hosts), else $GRADIO_SERVER_PORT, else 7860."""
    if port:
        return int(port)
    for name in ("PORT", "GRADIO_SERVER_PORT"):
        if os.environ.get(name):
            return int(os.environ[name])
    return DEFAULT_PORT


def launch(demo: gr.Blocks, settings: Settings, host: str | None = None,
           port: int | None = None, *, api: FastAPI | None = None, block: bool = True,
           on_stop: Callable[[], None] | None = None, **extra: Any) -> Server:
    """Serve the app, and the OpenAI-compatible ``api`` (assistant.api.app.create_api) at
    /v1 of the same port, in one ASGI app (``combine``). Blocks until SIGTERM
    or SIGINT (``on_stop`` runs at the signal), or with ``block=False`` returns the running
    Server (``url``, ``close()``).

    Exports reach only their owner through Gradio's file route (see ``files``).
    """
    host = host or os.environ.get("GRADIO_SERVER_NAME") or DEFAULT_HOST
    access = Access(settings)
    check_not_served(settings, extra.get("allowed_paths") or ())
    keep_uploads_swept(UPLOAD_CACHE_LIFETIME[1])  # uploads a killed process left, by age
    exports = getattr(demo, "strata_exports", None) or Exports()
    app_kwargs = dict(extra.pop("app_kwargs", None) or {})
    app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), guard_middleware(exports)]
    port = resolve_port(port)
    app = combine(
        api, demo, server_name=host, server_port=port, auth=access.logins,
        auth_message="Strata: log in to continue." if access.logins else None,
        max_file_size=f"{settings.max_upload_mb:g}mb", footer_links=["api", "settings"],
        theme=gr.themes.Soft(), css=CSS, show_error=True, app_kwargs=app_kwargs, **extra,
    )
    server = Server(app, host, port, on_stop=on_stop)
    if not block:
        return server.start()
    print(f"Strata: web app {server.url}/ · OpenAI-compatible API {server.api_url}", flush=True)
    server.run()
    return server


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> NoReturn:
    """Build everything and serve until SIGTERM or SIGINT, then stop cleanly: no new
    requests, answers in flight ended (ledger: cancelled), a training run interrupted, the
    stores closed; all within STOP_DEADLINE_S. It does not return: the process ends with
    status 0 (it is what `assistant serve` and `python app.py` run)."""
    from assistant.api.app import create_api
    from assistant.services import Services

    services = Services(settings)
    prepare(services)

    def on_stop() -> None:
        log.info("stopping: no new requests; ending answers in flight")
        _exit_after(STOP_DEADLINE_S)
        services.stop()

    launch(build_app(services), services.settings, host, port, api=create_api(services),
           on_stop=on_stop)
    services.close(training_wait_s=TRAINING_WAIT_S)
    log.info("stopped")
    # Everything is closed. A thread still in native code (a training step that outlived
    # TRAINING_WAIT_S, torch's pools) can abort the interpreter's own shutdown ("terminate
    # called without an active exception", status 134): end here instead.
    _exit_now()


def _exit_now() -> NoReturn:
    """Flush what was written and end the process with status 0, skipping finalization."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    logging.shutdown()
    os._exit(0)


def _exit_after(seconds: float) -> None:
    """A last resort: end the process with status 0 if it still runs ``seconds`` from now
    (a thread that does not stop must not turn a clean stop into a kill)."""
    def exit_now() -> None:
        names = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
        log.error("still running %.0f s after the stop signal (threads: %s); exiting now",
                  seconds, ", ".join(names))
        _exit_now()

    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True
    timer.start()
