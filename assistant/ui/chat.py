"""The Chat tab: streamed answers in any mode, with route, sources, timings and cost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.errors import StrataError
from assistant.ui.common import (
    FOOTER_START,
    MODE_CHOICES,
    Context,
    answer_details,
    answer_footer,
    sources_markdown,
    sources_title,
)

EXAMPLES = 4


def example_questions(knowledge_dir: Path, limit: int = EXAMPLES) -> list[str]:
    """A few held-out questions of the first bundled domain (knowledge/<d>/qa/test.jsonl)."""
    for path in sorted(Path(knowledge_dir).glob("*/qa/test.jsonl")):
        questions = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                questions.append(json.loads(line)["question"])
            if len(questions) >= limit:
                break
        return questions
    return []


def build(ctx: Context, tab: gr.Tab) -> None:
    """Lay out the tab inside the current gr.Tab and wire its events."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=4):
            chatbot = gr.Chatbot(
                label="Strata", height=560, buttons=["copy"], feedback_options=None,
                placeholder="Ask a question about your documents, or pick an example below.",
                elem_id="chatbot",
            )
            with gr.Row():
                question = gr.Textbox(
                    show_label=False, placeholder="Ask a question...", scale=6,
                    autofocus=True, max_lines=4, elem_id="question",
                )
                ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
            examples = example_questions(ctx.services.settings.knowledge_dir)
            if examples:
                gr.Examples([[q] for q in examples], inputs=question, label="Example questions")
        with gr.Column(scale=1, min_width=260):
            mode = gr.Radio(MODE_CHOICES, value="auto", label="Mode", elem_id="mode")
            adapter = gr.Dropdown(
                ctx.adapter_choices(), value="", label="Adapter (Adapter / Layered / Auto)",
                elem_id="adapter", allow_custom_value=True,  # the pipeline explains bad names
            )
            refresh = gr.Button("Refresh adapters", size="sm")
            clear = gr.Button("Clear chat", size="sm")
            with gr.Accordion("Last answer (JSON)", open=False):
                details = gr.JSON(label="answer", elem_id="answer-json")

    def respond(message: str, history: list[dict], mode: str, adapter: str,
                request: gr.Request) -> Iterator[tuple[Any, str, Any]]:
        yield from answer_stream(ctx, message, history, mode, adapter, request)

    inputs = [question, chatbot, mode, adapter]
    outputs = [chatbot, question, details]
    ask.click(respond, inputs, outputs, api_name="chat")
    question.submit(respond, inputs, outputs, api_visibility="private")
    def choices() -> Any:
        return gr.Dropdown(choices=ctx.adapter_choices())

    refresh.click(choices, None, adapter, api_name="adapter_choices")
    # adapters trained meanwhile (in the Adapters tab or by `assistant train`) show up here
    tab.select(choices, None, adapter, api_visibility="private")
    clear.click(lambda: ([], "", None), None, outputs, api_visibility="private", queue=False)


def answer_stream(ctx: Context, message: str, history: list[dict] | None, mode: str,
                  adapter: str, request: Any) -> Iterator[tuple[list[dict], str, Any]]:
    """Stream one answer into the chat history; the last update adds stats and sources."""
    history = list(history or [])
    if not message or not message.strip():
        raise gr.Error("Type a question first.")
    visitor = ctx.visitor(request)
    services = ctx.services
    turns = chat_turns(history)
    history += [{"role": "user", "content": message},
                {"role": "assistant", "content": ""}]
    yield history, "", None
    text = ""
    try:
        domains = ctx.access.retrieval_domains(visitor, services.store)
        stream = services.pipeline.stream(message, mode or "auto", adapter or None,
                                          session_id=visitor.session, domains=domains,
                                          history=turns)
        pieces = iter(stream)
        try:
            for piece in pieces:
                text += piece
                history[-1] = {"role": "assistant", "content": text}
                yield history, "", None
        finally:
            pieces.close()  # a closed tab stops the generation (ledger: "cancelled")
    except StrataError as exc:
        history[-1] = {"role": "assistant", "content": f"{text}\n\n**Could not answer:** {exc}"}
        yield history, "", {"error": str(exc)}
        return
    answer = stream.answer
    text = (answer.text or "(no text)") + answer_footer(answer)
    history[-1] = {"role": "assistant", "content": text}
    if answer.sources:
        history.append({"role": "assistant", "content": sources_markdown(answer.sources),
                        "metadata": {"title": sources_title(answer.sources), "status": "done"}})
    yield history, "", answer_details(answer)


FAILED = "**Could not answer:**"


def chat_turns(history: list[dict] | None) -> list[dict[str, str]]:
    """The conversation as the pipeline reads it: questions and answers only (no sources
    panels, route/timing footers or failed answers)."""
    turns: list[dict[str, str]] = []
    for message in history or []:
        content, role = message.get("content"), message.get("role")
        if message.get("metadata") or not isinstance(content, str) or FAILED in content:
            continue
        if role == "user" or (role == "assistant" and turns and turns[-1]["role"] == "user"):
            turns.append({"role": role, "content": content.split(FOOTER_START)[0]})
    return turns
