"""The blind arena of the Compare tab: two strategies drawn at random answer one question
as "A" and "B"; the user votes A, B, tie or both bad, and only then sees which was which.

Labelled comparisons let what a reader expects of "fine-tuned" or "RAG" colour the
verdict; a blind vote records what they actually prefer. The vote goes to the ledger
(``services.votes.battle``) with both answers' ids, and the Metrics tab turns the votes
into win rates. The drawn strategies and the answers' ids stay on the server (``gr.State``)
until the vote, so neither the page nor an API client can see the labels early.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import gradio as gr

from assistant.errors import StrataError
from assistant.ledger.votes import strategy
from assistant.ui.common import FAILED, Context, Refusal, answer_footer, strategy_label

WINNERS = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both are bad"}
ASK_VOTE = "Which answer is better? Vote below: the strategies are revealed after your vote."
INTRO = (
    "Two strategies, drawn at random (two modes, or an adapter against Prompt+RAG), answer "
    "the same question as **A** and **B**. Vote for the better answer without knowing which "
    "is which; the strategies are revealed after your vote, which the Metrics tab counts."
)


def strategy_pairs(adapters: list[str]) -> list[tuple[str, str]]:
    """The pairs that may meet: any two modes (Layered with a usable adapter), or an
    adapter against Prompt+RAG. Auto is left out: it is a choice among these, not one."""
    modes = ["prompt", "base", *[strategy("layered", name) for name in adapters]]
    pairs = list(itertools.combinations(modes, 2))
    return pairs + [(strategy("adapter", name), "prompt") for name in adapters]


def draw(adapters: list[str], rng: random.Random | None = None) -> tuple[str, str]:
    """A random pair, in random order (so neither side is always the same strategy)."""
    rng = rng or random.SystemRandom()
    pair = list(rng.choice(strategy_pairs(adapters)))
    rng.shuffle(pair)
    return pair[0], pair[1]


def build(ctx: Context) -> None:
    """Lay out the arena in the current context and wire its events."""
    gr.Markdown(INTRO)
    with gr.Row():
        question = gr.Textbox(label="Question", scale=5, elem_id="arena-question")
        run = gr.Button("Battle", variant="primary", scale=1, elem_id="arena-run")
    with gr.Row(equal_height=True):
        with gr.Column(min_width=200):
            head_a = gr.Markdown("### A", elem_id="arena-head-a")
            cell_a = gr.Markdown("", elem_classes=["compare-cell"], elem_id="arena-a")
        with gr.Column(min_width=200):
            head_b = gr.Markdown("### B", elem_id="arena-head-b")
            cell_b = gr.Markdown("", elem_classes=["compare-cell"], elem_id="arena-b")
    result = gr.Markdown(elem_id="arena-result")
    with gr.Row(visible=False, elem_id="arena-votes") as votes:
        buttons = {w: gr.Button(label, elem_id=f"vote-{w}") for w, label in WINNERS.items()}
    state = gr.State({})
    shown = [head_a, head_b, cell_a, cell_b, result, state]

    def battle(message: str, request: gr.Request) -> Iterator[list[Any]]:
        yield from battle_stream(ctx, message, request)

    def ready(state_: dict) -> Any:
        return gr.Row(visible=bool(state_.get("ready")))

    for event in (run.click(battle, [question], shown, api_name="arena"),
                  question.submit(battle, [question], shown, api_visibility="private")):
        event.then(ready, [state], votes, api_visibility="private", queue=False)
    for winner, button in buttons.items():
        def voted(state_: dict, request: gr.Request, winner: str = winner) -> list[Any]:
            return vote(ctx, winner, state_, request)

        button.click(voted, [state], shown, api_name=f"arena_vote_{winner}").then(
            ready, [state], votes, api_visibility="private", queue=False)


def battle_stream(ctx: Context, message: str, request: gr.Request | None,
                  rng: random.Random | None = None) -> Iterator[list[Any]]:
    """Yield [head A, head B, cell A, cell B, result, state] as A, then B, streams in."""
    if not message or not message.strip():
        raise Refusal("Type a question first.")
    sides = [{"strategy": name} for name in draw(ctx.usable_adapters(), rng)]
    state: dict[str, Any] = {"question": message, "sides": sides, "ready": False}
    texts = ["*waiting for the model...*", ""]
    yield ["### A", "### B", *texts, "", state]
    for i, side in enumerate(sides):
        texts[i] = ""
        for texts[i] in _answer(ctx, message, side, request):
            yield ["### A", "### B", *texts, "", state]
        if not side.get("answer_id"):
            yield ["### A", "### B", *texts, "One side could not answer, so there is nothing "
                   "to judge: ask again for a new pair.", state]
            return
    state = {**state, "ready": True}
    yield ["### A", "### B", *texts, ASK_VOTE, state]


def _answer(ctx: Context, message: str, side: dict, request: gr.Request | None) -> Iterator[str]:
    """The text so far of one side's answer; fills the side's answer id and footer."""
    visitor = ctx.visitor(request)
    mode, _, adapter = side["strategy"].partition(":")
    text = ""
    try:
        domains = ctx.access.retrieval_domains(visitor, ctx.services.store)
        stream = ctx.services.pipeline.stream(message, mode, adapter or None,
                                              session_id=visitor.owner, domains=domains)
        pieces = iter(stream)
        try:
            for piece in pieces:
                text += piece
                yield text
        finally:
            pieces.close()  # a closed page stops the generation (ledger: "cancelled")
    except StrataError as exc:
        yield f"{text}\n\n{FAILED} {exc}"
        return
    answer = stream.answer
    if answer is None:  # the stream records an answer or raises; never both absent
        raise StrataError("the answer ended without a result")
    side.update(answer_id=answer.ledger_id, text=answer.text or "(no text)",
                footer=answer_footer(answer))
    yield side["text"]


def vote(ctx: Context, winner: str, state: dict, request: gr.Request | None) -> list[Any]:
    """Record the vote with both answers' ids, then reveal the strategies."""
    if not (state or {}).get("ready"):
        raise Refusal("Ask a question first: there are no two answers to judge yet.")
    a, b = state["sides"]
    try:
        visitor = ctx.visitor(request)
        ctx.services.votes.battle(visitor.owner, a["answer_id"], b["answer_id"],
                                  a["strategy"], b["strategy"], winner,
                                  sessions=visitor.ledger_sessions())
    except StrataError as exc:
        raise Refusal(str(exc)) from exc
    heads = [f"### {side} · {strategy_label(s['strategy'])}"
             for side, s in zip("AB", (a, b), strict=True)]
    result = (f"You voted **{WINNERS[winner]}**. A was **{strategy_label(a['strategy'])}**, "
              f"B was **{strategy_label(b['strategy'])}**. Ask another question for a new "
              "pair; the Metrics tab shows the win rates.")
    return [*heads, a["text"] + a["footer"], b["text"] + b["footer"], result,
            {**state, "ready": False}]
