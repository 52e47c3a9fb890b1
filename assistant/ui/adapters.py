"""The Adapters tab: what is on disk (through assistant.models.adapter_folder), load, unload.

Loading and unloading change what every visitor's answers use, so with ASSISTANT_ADMINS set
they are admin actions, like training. Training from the browser lives in
``assistant/ui/training.py`` (its own module, so the training work can change it without
touching this tab); training from the domain's own documents, up to the verdict, in
``assistant/ui/from_documents.py``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import gradio as gr

from assistant.errors import StrataError
from assistant.models.adapter_folder import CARD_MD
from assistant.ui import from_documents, training
from assistant.ui.common import Context, Refusal, megabytes

log = logging.getLogger(__name__)
HEADERS = ["adapter", "status", "loaded", "base model", "rank", "alpha", "target modules",
           "size", "trained on", "eval score"]


def build(ctx: Context, tab: gr.Tab) -> None:
    base = ctx.services.base
    weights = ctx.services.backend.quantization or base.quant  # what answers: q4_1, nf4, ...
    gr.Markdown(
        f"LoRA adapters in `{ctx.services.settings.adapters_dir}` on the base model "
        f"**{base.name}** ({weights}). Loading is optional: an adapter loads on first use."
    )
    table = gr.Dataframe(headers=HEADERS, label="Adapters", interactive=False,
                         elem_id="adapters")
    with gr.Row():
        pick = gr.Dropdown([], label="Adapter", scale=3, allow_custom_value=True)
        load = gr.Button("Load", variant="primary", scale=1)
        unload = gr.Button("Unload", scale=1)
        refresh = gr.Button("Refresh", scale=1)
    status = gr.Markdown()
    with gr.Accordion("Adapter card", open=False):
        card = gr.Markdown("Pick an adapter to see how it was trained.")
    with gr.Accordion("Train a new adapter", open=False):
        finished = training.build(ctx)
    with gr.Accordion("Train from documents", open=False, elem_id="from-documents"):
        finished += from_documents.build(ctx, tab)

    def listing() -> tuple[Any, Any, str]:
        rows = adapter_rows(ctx)
        note = "" if rows else ("No adapters yet: train one below or with `assistant train`; "
                                "it appears here without a restart.")
        return rows, gr.Dropdown(choices=[row[0] for row in rows]), note

    def do_load(name: str, request: gr.Request) -> tuple[Any, str]:
        message = load_adapter(ctx, name, request)
        return adapter_rows(ctx), message

    def do_unload(name: str, request: gr.Request) -> tuple[Any, str]:
        message = unload_adapter(ctx, name, request)
        return adapter_rows(ctx), message

    refresh.click(listing, None, [table, pick, status], api_name="adapters")
    tab.select(listing, None, [table, pick, status], api_visibility="private")
    load.click(do_load, [pick], [table, status], api_name="load_adapter")
    unload.click(do_unload, [pick], [table, status], api_name="unload_adapter")
    pick.change(lambda name: card_markdown(ctx, name), [pick], [card], api_visibility="private")
    for event in finished:  # a finished run shows its adapter in the table at once
        event.then(listing, None, [table, pick, status], api_visibility="private")


def adapter_rows(ctx: Context) -> list[list[Any]]:
    rows = []
    loaded = ctx.services.loaded_adapters()
    for info in ctx.services.adapters.list():
        card = info.card.to_dict() if info.card is not None else {}
        rows.append([
            info.name,
            "ok" if info.ok else f"refused: {info.problem}",
            "yes" if info.name in loaded else "no",
            info.base_model or card.get("base_model", ""),
            info.rank if info.rank is not None else "-",
            info.alpha if info.alpha is not None else "-",
            ", ".join(sorted({m.rsplit(".", 1)[-1] for m in info.target_modules or []})) or "-",
            megabytes(info.size_bytes) if info.size_bytes else "-",
            trained_on(card),
            eval_score(card),
        ])
    return rows


def trained_on(card: dict[str, Any]) -> str:
    data = card.get("data") or {}
    if not data:
        return "-"
    examples = data.get("examples")
    return f"{data.get('file', '?')}" + (f" ({examples} examples)" if examples else "")


def eval_score(card: dict[str, Any]) -> str:
    """The evaluation stored in card.json, as briefly as it can be said ('-' before one)."""
    result = card.get("eval")
    if not isinstance(result, dict):  # None until `assistant eval` (a Card refuses other types)
        return "-"
    if isinstance(result.get("adapter_recall"), (int, float)):  # written by `assistant eval`
        prompt = result.get("prompt_recall")
        versus = f" (prompt mode {prompt:.2f})" if isinstance(prompt, (int, float)) else ""
        return f"fact recall {result['adapter_recall']:.2f}{versus}"
    if isinstance(result.get("accuracy"), (int, float)):  # a hand-written card's score
        return f"accuracy {result['accuracy']:.2f}"
    return json.dumps(result, default=str)[:60]


def load_adapter(ctx: Context, name: str, request: gr.Request | None) -> str:
    """Load an adapter now (an admin action when ASSISTANT_ADMINS is set)."""
    training.require_write(ctx, request, "load adapters")
    if not name:
        raise Refusal("Choose an adapter first.")
    try:
        took = ctx.services.load_adapter(name)  # onto the engine that answers
    except StrataError as exc:
        raise Refusal(str(exc)) from None
    return f"**{name}** is loaded" + (f" ({took * 1000:.0f} ms)." if took else " (it already was).")


def unload_adapter(ctx: Context, name: str, request: gr.Request | None) -> str:
    """Unload an adapter others may be using: an admin action when ASSISTANT_ADMINS is set."""
    training.require_write(ctx, request, "unload adapters")
    if not name:
        raise Refusal("Choose an adapter first.")
    if ctx.services.unload_adapter(name):
        return f"**{name}** unloaded; it loads again on its next use."
    return f"**{name}** was not loaded."


def card_markdown(ctx: Context, name: str | None) -> str:
    if not name:
        return "Pick an adapter to see how it was trained."
    try:
        folder = ctx.services.adapters.path_of(name)  # refuses names outside adapters_dir
    except StrataError as exc:
        return str(exc)
    card = folder / CARD_MD
    if not card.is_file():
        return f"`{name}` has no {CARD_MD} (it was not trained by `assistant train`)."
    try:
        return card.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"`{name}`: its {CARD_MD} cannot be read ({exc})."

