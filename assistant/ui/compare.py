"""The Compare tab: one question answered in every mode, side by side, with a cost table;
and the blind arena (``arena``), where two unnamed strategies meet and the user judges."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from assistant.answering.modes import ROUTED
from assistant.errors import StrataError
from assistant.ui import arena
from assistant.ui.common import (
    COMPARE_HEADERS,
    MODE_LABELS,
    Context,
    Refusal,
    answer_footer,
    stats_row,
)

MODES = ROUTED  # auto is one of these, chosen per question


def build(ctx: Context, tab: gr.Tab) -> None:
    with gr.Tabs():
        with gr.Tab("Side by side", id="labelled"):
            labelled(ctx, tab)
        with gr.Tab("Blind arena", id="arena", elem_id="arena-tab"):
            arena.build(ctx)


def labelled(ctx: Context, tab: gr.Tab) -> None:
    """Every mode answers, each under its name, with a latency and cost table."""
    gr.Markdown(
        "One question in each mode, one after the other (the model answers one request at a "
        "time). Adapter and Layered use the adapter chosen here, or the best-matching one."
    )
    with gr.Row():
        question = gr.Textbox(label="Question", scale=5, elem_id="compare-question")
        adapter = gr.Dropdown(ctx.adapter_choices(), value="", label="Adapter", scale=2,
                              allow_custom_value=True)
        run = gr.Button("Compare", variant="primary", scale=1)
    with gr.Row(equal_height=True):
        cells = []
        for mode in MODES:
            with gr.Column(min_width=200):
                gr.Markdown(f"### {MODE_LABELS[mode]}")
                cells.append(gr.Markdown("", elem_classes=["compare-cell"]))
    table = gr.Dataframe(headers=COMPARE_HEADERS, label="Latency, tokens and cost",
                         interactive=False, elem_id="compare-table")

    def compare(message: str, chosen: str, request: gr.Request) -> Iterator[list[Any]]:
        yield from compare_stream(ctx, message, chosen, request)

    run.click(compare, [question, adapter], [*cells, table], api_name="compare")
    question.submit(compare, [question, adapter], [*cells, table], api_visibility="private")
    # Re-read the adapters whenever the tab is opened: new ones appear without a restart.
    tab.select(lambda: gr.Dropdown(choices=ctx.adapter_choices()), None, adapter,
               api_visibility="private", queue=False)


def compare_stream(ctx: Context, message: str, adapter: str, request: gr.Request | None
                   ) -> Iterator[list[Any]]:
    """Yield [cell per mode..., table rows] as each mode's answer streams in."""
    if not message or not message.strip():
        raise Refusal("Type a question first.")
    visitor = ctx.visitor(request)
    services = ctx.services
    texts = ["" for _ in MODES]
    rows: list[list[Any]] = []
    domains = ctx.access.retrieval_domains(visitor, services.store)
    for i, mode in enumerate(MODES):
        texts[i] = "*waiting for the model...*"
        yield [*texts, rows]
        texts[i] = ""
        try:
            stream = services.pipeline.stream(message, mode, adapter or None,
                                              session_id=visitor.owner, domains=domains)
            for piece in stream:
                texts[i] += piece
                yield [*texts, rows]
        except StrataError as exc:
            texts[i] = f"**Could not answer:** {exc}"
            rows = [*rows, stats_row(MODE_LABELS[mode], None, str(exc))]
            yield [*texts, rows]
            continue
        answer = stream.answer
        if answer is None:  # the stream records an answer or raises; never both absent
            raise StrataError("the answer ended without a result")
        texts[i] = (answer.text or "(no text)") + answer_footer(answer)
        rows = [*rows, stats_row(MODE_LABELS[mode], answer)]
        yield [*texts, rows]
