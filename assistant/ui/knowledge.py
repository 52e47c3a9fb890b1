"""The Knowledge tab: upload documents (with progress and a result per file), list, delete."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.access import SESSION_PREFIX, shown_name
from assistant.errors import StrataError
from assistant.ui.common import Context, Refusal, ingest_outcome, megabytes
from assistant.ui.files import discard_upload, hide_server_paths

log = logging.getLogger(__name__)
RESULT_HEADERS = ["file", "result", "chunks", "domain"]
DOC_HEADERS = ["name", "domain", "chunks", "size", "ingested at"]
SUPPORTED_TEXT = ".txt .md .pdf .html .docx .csv"


def build(ctx: Context, tab: gr.Tab) -> None:
    private = ctx.access.private
    note = ("Your uploads are private to this browser session: only your answers use them."
            if private else "Uploads are shared by everyone using this app.")
    gr.Markdown(f"Add documents for Prompt+RAG and Layered answers ({SUPPORTED_TEXT}). {note}")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            files = gr.File(file_count="multiple", label="Documents", elem_id="upload")
            domain = gr.Textbox(label="Domain (optional)", placeholder="general",
                                visible=not private, max_lines=1)
            ingest = gr.Button("Add to knowledge base", variant="primary", elem_id="ingest")
        with gr.Column(scale=3):
            results = gr.Dataframe(headers=RESULT_HEADERS, label="Upload results",
                                   interactive=False, elem_id="upload-results")
    docs = gr.Dataframe(headers=DOC_HEADERS, label="Documents", interactive=False,
                        elem_id="documents")
    with gr.Row():
        pick = gr.Dropdown([], label="Document", scale=3, allow_custom_value=True)
        delete = gr.Button("Delete", variant="stop", scale=1)
        refresh = gr.Button("Refresh list", scale=1)
    status = gr.Markdown()

    def upload(paths: list[str] | None, domain_name: str, request: gr.Request,
               progress: gr.Progress = gr.Progress()  # noqa: B008  # Gradio's idiom
               ) -> tuple[Any, ...]:
        rows = ingest_files(ctx, paths, domain_name, request, progress)
        table, names = document_table(ctx, request)
        return rows, table, gr.Dropdown(choices=names, value=None), None

    def remove(name: str, request: gr.Request) -> tuple[Any, ...]:
        message = delete_document(ctx, name, request)
        table, names = document_table(ctx, request)
        return table, gr.Dropdown(choices=names, value=None), message

    def listing(request: gr.Request) -> tuple[Any, Any]:
        table, names = document_table(ctx, request)
        return table, gr.Dropdown(choices=names)

    ingest.click(upload, [files, domain], [results, docs, pick, files], api_name="upload")
    delete.click(remove, [pick], [docs, pick, status], api_name="delete_document")
    refresh.click(listing, None, [docs, pick], api_name="list_documents")
    tab.select(listing, None, [docs, pick], api_visibility="private")


def ingest_files(ctx: Context, paths: list[str] | None, domain: str, request: gr.Request | None,
                 progress: gr.Progress | None = None) -> list[list[Any]]:
    """Ingest the uploaded files; one table row per file. Refusals raise gr.Error.

    Whatever happens, the uploads then leave Gradio's cache, where any visitor who named
    their path could fetch them; the store keeps their chunks.
    """
    if not paths:
        raise Refusal("Choose one or more files first.")
    try:
        return _ingest(ctx, paths, domain, request, progress)
    finally:
        for path in paths:
            discard_upload(path)


def _ingest(ctx: Context, paths: list[str], domain: str, request: gr.Request | None,
            progress: gr.Progress | None) -> list[list[Any]]:
    visitor = ctx.visitor(request)
    try:
        ctx.access.require_write(visitor, "upload documents")
    except StrataError as exc:
        raise Refusal(str(exc)) from None
    access = ctx.access
    # Gradio keeps the visitor's own file name as the upload's basename.
    pairs = [(Path(p), access.stored_name(visitor, Path(p).name)) for p in paths]
    target = access.domain_of(visitor) or (domain or "").strip() or None

    def report(done: int, total: int, name: str) -> None:
        if progress is not None:
            progress((done, total), desc=f"{shown_name(name)} ({done}/{total})", unit="files")

    results = ctx.services.ingestor.ingest(pairs, domain=target, progress=report)
    for result in results:
        log.info("upload by %s: %s", visitor.user or visitor.session, result.line())
    return [[shown_name(r.name), hide_server_paths(ingest_outcome(r)), r.chunks,
             _domain_label(r.domain)] for r in results]


def delete_document(ctx: Context, name: str, request: gr.Request | None) -> str:
    if not name:
        raise Refusal("Choose a document to delete.")
    visitor = ctx.visitor(request)
    store = ctx.services.store
    try:
        stored = ctx.access.resolve_delete(visitor, name, store)
        info = store.delete_document(stored)
    except StrataError as exc:
        raise Refusal(str(exc)) from None
    log.info("deleted %s (%d chunks) for %s", stored, info.chunks, visitor.user or visitor.session)
    return f"Deleted **{name}** ({info.chunks} chunks)."


def document_table(ctx: Context, request: gr.Request | None) -> tuple[list[list[Any]], list[str]]:
    """Rows of the documents this visitor sees, and their names for the delete list."""
    visitor = ctx.visitor(request)
    docs = ctx.access.visible(visitor, ctx.services.store.list_documents())
    rows: list[list[Any]] = [[shown_name(d.name), _domain_label(d.domain), d.chunks,
                              megabytes(d.size), d.ingested_at] for d in docs]
    return rows, [shown_name(d.name) for d in docs]


def _domain_label(domain: str) -> str:
    return "private (yours)" if domain.startswith(SESSION_PREFIX) else domain
