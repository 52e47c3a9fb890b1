"""The Gradio app: one tab per module, assembled over one Services object.

``build_app(services)`` takes the services it is given, so tests can pass a tiny model;
``serve()`` is what ``python app.py`` and ``assistant serve`` run: prepare the services
(demo knowledge, model loaded once), build, queue, launch.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import gradio as gr

from assistant.api.server import Server, combine
from assistant.ui import adapters, chat, compare, conversations, knowledge, metrics
from assistant.ui.access import Access, Visitor
from assistant.ui.common import Context
from assistant.ui.files import Exports, check_not_served, guard_middleware, keep_uploads_swept

if TYPE_CHECKING:
    from assistant.services import Services
    from assistant.settings import Settings

log = logging.getLogger(__name__)
DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 7860
# Gradio deletes what it cached (uploads never ingested) after an hour, checked hourly.
UPLOAD_CACHE_LIFETIME = (3600, 3600)
# Docker, Spaces and Kubernetes kill a container about 10 s after SIGTERM: whatever still
# runs by then (a training step, a stuck client) is cut here first, after the stores closed.
STOP_DEADLINE_S = 8.0
TRAINING_WAIT_S = 3.0  # of that, for a training run to reach the end of its step
CSS = """
.answer-stats { display: block; opacity: 0.75; margin-top: 0.4em; padding-top: 0.4em;
                border-top: 1px solid var(--border-color-primary); }
.compare-cell { min-height: 120px; }
"""
HEADER = (
    "## Strata\nCompare prompt engineering with retrieval (**Prompt+RAG**), a fine-tuned "
    "**Adapter**, both (**Layered**) or the **Base** model on your own documents; "
    "**Auto** lets the router choose. Every answer shows its route, sources, latency and cost."
)


def build_app(services: Services) -> gr.Blocks:
    """The Blocks app over ``services`` (the model should already be loaded: see prepare)."""
    ctx = Context(services, Access(services.settings))
    with gr.Blocks(title="Strata", analytics_enabled=False,
                   delete_cache=UPLOAD_CACHE_LIFETIME) as demo:
        gr.Markdown(HEADER)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat") as tab:
                chat.build(ctx, tab)
            with gr.Tab("Compare", id="compare") as tab:
                compare.build(ctx, tab)
            with gr.Tab("Knowledge", id="knowledge") as tab:
                knowledge.build(ctx, tab)
            with gr.Tab("Adapters", id="adapters") as tab:
                adapters.build(ctx, tab)
            with gr.Tab("Metrics", id="metrics") as tab:
                metrics.build(ctx, tab)

        def on_close(request: gr.Request) -> None:
            forget_session(ctx, request)

        demo.unload(on_close)
    demo.strata_exports = ctx.exports  # launch guards them
    s = services.settings
    # The queue tells waiting visitors their position; the model lock serialises generation.
    demo.queue(default_concurrency_limit=s.max_batch, max_size=s.max_queue)
    return demo


def forget_session(ctx: Context, request: gr.Request) -> None:
    """An anonymous visitor's private uploads go when their page closes (nobody else
    could ever reach them); a logged-in user's stay for their next visit. Exports go, and
    so do an anonymous visitor's saved chats."""
    visitor = Visitor.of(request)
    ctx.exports.forget_session(visitor.session)
    conversations.forget(ctx, request)  # an anonymous visitor's chats, like their uploads
    domain = ctx.access.domain_of(visitor)
    if domain is None or visitor.user:
        return
    store = ctx.services.store
    for doc in store.list_documents(domain=domain):
        store.delete_document(doc.name)
        log.info("session closed: removed its upload %s", doc.name)


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
    log.info("ready in %.1f s", time.perf_counter() - started)


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
           port: int | None = None, *, api: Any = None, block: bool = True,
           on_stop: Callable[[], None] | None = None, **extra: Any) -> Server:
    """Serve the app, and the OpenAI-compatible ``api`` (assistant.api.app.create_api) at
    /v1 of the same port, in one ASGI app (assistant/api/server.py). Blocks until SIGTERM
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
