"""The Chat tab: streamed answers in any mode, with route, sources, timings and cost.

Users can stop an answer (the ledger records it as cancelled), retry the last one, edit or
undo a question, copy any message, and like or dislike every answer with an optional
comment; the sidebar (``conversations``) keeps the chats. The ``chat`` API endpoint keeps
its signature for gradio_client users: (question, history, mode, adapter) in, (history,
"", details) out; the chat's state travels beside it, invisible to the API.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.errors import StrataError
from assistant.ui import conversations
from assistant.ui.common import (
    FAILED,
    MODE_CHOICES,
    NO_WORDS,
    Context,
    Refusal,
    answer_details,
    answer_footer,
    chat_turns,
    message_text,
    sources_markdown,
    sources_title,
)

__all__ = ["answer_stream", "build", "chat_turns", "converse", "example_questions"]
EXAMPLES = 4
STOPPED = "Stopped: the partial answer stays in the chat; the ledger records it as cancelled."


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
    state = gr.State(conversations.fresh_state())
    with gr.Row(equal_height=False):
        bar = conversations.Sidebar(ctx)  # a column left of the chat, never over it
        with gr.Column(scale=4):
            chatbot = gr.Chatbot(
                label="Strata", height=560, buttons=["copy", "copy_all"],
                feedback_options=("Like", "Dislike"), editable="user", elem_id="chatbot",
                placeholder="Ask a question about your documents, or pick an example below.",
            )
            with gr.Row():
                question = gr.Textbox(
                    show_label=False, placeholder="Ask a question...", scale=6,
                    autofocus=True, max_lines=4, elem_id="question",
                )
                ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
            status = gr.Markdown(elem_id="chat-status")
            feedback = Feedback()
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
            with gr.Accordion("Last answer (JSON)", open=False):
                details = gr.JSON(label="answer", elem_id="answer-json")

    running = wire_answers(ctx, [ask, question, chatbot, mode, adapter, state, details, status])
    stop.click(stopped, chatbot, [chatbot, status], cancels=running, queue=False,
               api_visibility="private")
    feedback.wire(ctx, chatbot, state, status)
    conversations.wire(ctx, bar, [chatbot, state, details, status], tab)

    def choices() -> Any:
        return gr.Dropdown(choices=ctx.adapter_choices())

    refresh.click(choices, None, adapter, api_name="adapter_choices")
    # adapters trained meanwhile (in the Adapters tab or by `assistant train`) show up here
    tab.select(choices, None, adapter, api_visibility="private")


def stopped(history: list[dict] | None) -> tuple[Any, str]:
    """Say that the answer was stopped; an answer stopped before its first word would
    otherwise be an empty bubble."""
    history = list(history or [])
    if history and history[-1].get("role") == "assistant" and not (
            message_text(history[-1]) or "").strip():
        history[-1] = {"role": "assistant", "content": NO_WORDS}
    return history, STOPPED


def wire_answers(ctx: Context, parts: list[Any]) -> list[Any]:
    """Ask, retry, edit and undo; returns the events a Stop cancels."""
    ask, question, chatbot, mode, adapter, state, details, status = parts

    def respond(message: str, history: list[dict], mode_: str, adapter_: str, state_: dict,
                request: gr.Request) -> Iterator[tuple[Any, ...]]:
        yield from converse(ctx, message, history, state_, mode_, adapter_, request)

    def retry(history: list[dict], mode_: str, adapter_: str, state_: dict,
              data: gr.RetryData, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        message = conversations.question_at(history, _index(data))
        kept, state_ = conversations.cut(ctx, request, state_, history, _index(data))
        yield from converse(ctx, message, kept, state_, mode_, adapter_, request)

    def edit(history: list[dict], mode_: str, adapter_: str, state_: dict,
             data: gr.EditData, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        message = data.value if isinstance(data.value, str) else str(data.value or "")
        kept, state_ = conversations.cut(ctx, request, state_, history, _index(data))
        yield from converse(ctx, message, kept, state_, mode_, adapter_, request)

    def undo(history: list[dict], state_: dict, data: gr.UndoData,
             request: gr.Request) -> tuple[Any, ...]:
        message = conversations.question_at(history, _index(data))
        kept, state_ = conversations.cut(ctx, request, state_, history, _index(data))
        return kept, message, state_

    inputs = [question, chatbot, mode, adapter, state]
    outputs = [chatbot, question, details, state]
    quiet = {"api_visibility": "private"}
    events = [
        ask.click(respond, inputs, outputs, api_name="chat"),
        question.submit(respond, inputs, outputs, **quiet),
        chatbot.retry(retry, [chatbot, mode, adapter, state], outputs, **quiet),
        chatbot.edit(edit, [chatbot, mode, adapter, state], outputs, **quiet),
    ]
    for trigger in (ask.click, question.submit, chatbot.retry, chatbot.edit):
        trigger(lambda: "", None, status, queue=False, **quiet)  # a new answer: old notes go
    chatbot.undo(undo, [chatbot, state], [chatbot, question, state], **quiet)
    return events


def _index(data: Any) -> int:
    index = data.index
    return int(index[0] if isinstance(index, (list, tuple)) else index)


class Feedback:
    """Like/dislike on every answer, recorded at once; an optional comment follows."""

    def __init__(self) -> None:
        with gr.Column(visible=False, elem_id="feedback") as self.box:
            self.answer = gr.Textbox(visible=False, label="answer id")
            with gr.Row():
                self.verdict = gr.Radio(["like", "dislike"], label="Your verdict", scale=1,
                                        elem_id="feedback-verdict")
                self.comment = gr.Textbox(label="Comment (optional): what was right or wrong?",
                                          scale=4, max_lines=3, elem_id="feedback-comment")
                self.send = gr.Button("Send comment", scale=1, elem_id="feedback-send")

    def wire(self, ctx: Context, chatbot: gr.Chatbot, state: gr.State, status: gr.Markdown
             ) -> None:
        def liked(state_: dict, data: gr.LikeData, request: gr.Request) -> tuple[Any, ...]:
            return on_like(ctx, state_, data, request)

        def sent(answer: str, verdict: str, comment: str, request: gr.Request
                 ) -> tuple[Any, ...]:
            return send_feedback(ctx, answer, verdict, comment, request)

        chatbot.like(liked, [state], [self.box, self.answer, self.verdict, self.comment,
                                      status], api_visibility="private")
        self.send.click(sent, [self.answer, self.verdict, self.comment], [self.box, status],
                        api_name="feedback")


def on_like(ctx: Context, state: dict, data: gr.LikeData, request: gr.Request | None
            ) -> tuple[Any, ...]:
    """Record the thumb at once against the answer's ledger row; offer a comment box."""
    if data.liked is not True and data.liked is not False:  # a thumb taken back
        return gr.Column(visible=False), "", None, "", ""
    answer = ((state or {}).get("answers") or {}).get(str(_index(data)))
    if not answer:
        raise Refusal("This answer has no ledger record to vote on (it failed or was "
                       "stopped).")
    verdict = "like" if data.liked else "dislike"
    _record(ctx, answer, verdict, None, request)
    note = f"Thanks: your {verdict} is recorded. Add a comment below if you like."
    return gr.Column(visible=True), answer, verdict, "", note


def send_feedback(ctx: Context, answer: str, verdict: str, comment: str, request: gr.Request | None
                  ) -> tuple[Any, str]:
    """Record a verdict with its comment (it replaces this visitor's earlier one)."""
    _record(ctx, answer, verdict, comment, request)
    return gr.Column(visible=False), f"Thanks: your {verdict} and comment are recorded."


def _record(ctx: Context, answer: str, verdict: str, comment: str | None,
            request: gr.Request | None) -> None:
    try:
        visitor = ctx.visitor(request)
        ctx.services.votes.feedback(answer, visitor.owner, verdict, comment,
                                    sessions=visitor.ledger_sessions())
    except StrataError as exc:
        raise Refusal(str(exc)) from exc


def converse(ctx: Context, message: str, history: list[dict] | None, state: dict | None,
             mode: str, adapter: str, request: gr.Request | None) -> Iterator[tuple[Any, ...]]:
    """One turn of a chat: answer_stream's updates plus the chat's state; the question and
    the finished (or stopped) answer are saved to the visitor's conversation."""
    history = list(history or [])
    if not message or not message.strip():
        raise Refusal("Type a question first.")
    if not history:  # an empty chat is a new conversation
        state = conversations.fresh_state()
    state = conversations.save_question(ctx, request, state or {}, history, message)
    index = len(history) + 1  # where answer_stream puts the answer
    stream = answer_stream(ctx, message, history, mode, adapter, request)
    shown, details = history, None
    try:
        for shown, cleared, details in stream:
            yield shown, cleared, details, state
    except GeneratorExit:  # Stop, or the page closed: keep what was said
        stream.close()
        conversations.save_answer(ctx, request, state, shown[index], None)
        raise
    answer_id = (details or {}).get("ledger_id")
    if answer_id:
        state = {**state, "answers": {**state["answers"], str(index): answer_id}}
    conversations.save_answer(ctx, request, state, shown[index], answer_id)
    yield shown, "", details, state


def answer_stream(ctx: Context, message: str, history: list[dict] | None, mode: str,
                  adapter: str, request: gr.Request | None
                  ) -> Generator[tuple[list[dict], str, Any], None, None]:
    """Stream one answer into the chat history; the last update adds stats and sources."""
    history = list(history or [])
    if not message or not message.strip():
        raise Refusal("Type a question first.")
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
                                          session_id=visitor.owner, domains=domains,
                                          history=turns)
        pieces = iter(stream)
        try:
            for piece in pieces:
                text += piece
                history[-1] = {"role": "assistant", "content": text}
                yield history, "", None
        finally:
            pieces.close()  # Stop or a closed tab ends the generation (ledger: "cancelled")
    except StrataError as exc:
        history[-1] = {"role": "assistant", "content": f"{text}\n\n{FAILED} {exc}"}
        yield history, "", {"error": str(exc)}
        return
    answer = stream.answer
    if answer is None:  # the stream records an answer or raises; never both absent
        raise StrataError("the answer ended without a result")
    text = (answer.text or "(no text)") + answer_footer(answer)
    history[-1] = {"role": "assistant", "content": text}
    if answer.sources:
        history.append({"role": "assistant", "content": sources_markdown(answer.sources),
                        "metadata": {"title": sources_title(answer.sources), "status": "done"}})
    yield history, "", answer_details(answer)
