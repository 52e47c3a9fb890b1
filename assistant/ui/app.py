"""The Gradio app: one tab per module, assembled over one Services object.

``build_app(services)`` takes the services it is given, so tests can pass a tiny model;
``assistant.server`` serves it beside the API (``serve()`` is what ``python app.py`` and
``assistant serve`` run).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import gradio as gr

from assistant.access import Access, Visitor
from assistant.ui import adapters, chat, compare, conversations, knowledge, metrics
from assistant.ui.common import Context

if TYPE_CHECKING:
    from assistant.services import Services

log = logging.getLogger(__name__)
# Gradio deletes what it cached (uploads never ingested) after an hour, checked hourly.
UPLOAD_CACHE_LIFETIME = (3600, 3600)
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
    """The Blocks app over ``services`` (the model should already be loaded: see
    ``assistant.server.prepare``)."""
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
