"""The blind arena's draw, its battle and vote handlers, and the Metrics tab's win rates."""

from __future__ import annotations

import random

import gradio as gr
import pytest

from assistant.ui.arena import battle_stream, draw, strategy_pairs, vote
from assistant.ui.metrics import win_rates_view
from tests.unit.ui_fakes import context, request

PAGE = request("page-1")


def test_pairs_are_two_modes_or_an_adapter_against_prompt_mode():
    assert strategy_pairs([]) == [("prompt", "base")]
    pairs = strategy_pairs(["law"])
    assert set(pairs) == {("prompt", "base"), ("prompt", "layered:law"),
                          ("base", "layered:law"), ("adapter:law", "prompt")}
    assert not any("auto" in a or "auto" in b for a, b in pairs)
    drawn = {draw(["law"], random.Random(seed)) for seed in range(40)}
    assert ("prompt", "base") in drawn and ("base", "prompt") in drawn  # either side


def test_answers_stay_unlabelled_until_the_vote_which_records_both_ids(tmp_path):
    ctx = context(tmp_path, adapters=["law"])
    updates = list(battle_stream(ctx, "How much is a permit?", PAGE, random.Random(3)))
    heads_a, heads_b, cell_a, cell_b, result, state = updates[-1]
    assert {u[0] for u in updates} == {"### A"} and {u[1] for u in updates} == {"### B"}
    assert cell_a.strip() == cell_b.strip() == "It opens at 07:30."  # no footer, no label
    assert "Vote below" in result and state["ready"]
    head_a, head_b, cell_a, _, result, after = vote(ctx, "tie", state, PAGE)
    a, b = state["sides"]
    assert head_a.endswith(("Prompt+RAG", "Base", "Layered (law)", "Adapter (law)"))
    assert "TTFT" in cell_a and "You voted **Tie**" in result and not after["ready"]
    [battle] = ctx.services.votes.battles()
    assert (battle["a_answer_id"], battle["b_answer_id"]) == (a["answer_id"], b["answer_id"])
    assert (battle["a_strategy"], battle["b_strategy"]) == (a["strategy"], b["strategy"])
    assert battle["winner"] == "tie" and battle["owner"] == "session:page-1"
    modes = [call["mode"] for call in ctx.services.pipeline.calls]
    assert modes == [s["strategy"].partition(":")[0] for s in (a, b)]


def test_a_vote_needs_two_answers_first(tmp_path):
    ctx = context(tmp_path)
    with pytest.raises(gr.Error, match="no two answers"):
        vote(ctx, "a", {}, PAGE)
    with pytest.raises(gr.Error, match="Type a question"):
        list(battle_stream(ctx, " ", PAGE))


def test_win_rates_show_every_strategy_with_an_interval(tmp_path):
    ctx = context(tmp_path)
    summary, rows, _ = win_rates_view(ctx)
    assert "No arena votes yet" in summary and rows == []
    for winner in ("a", "a", "b"):
        *_, state = list(battle_stream(ctx, "Which?", PAGE, random.Random(0)))[-1]
        vote(ctx, winner, state, PAGE)
    summary, rows, figure = win_rates_view(ctx)
    assert "**3** blind votes" in summary
    assert sorted(r[0] for r in rows) == ["Base", "Prompt+RAG"]
    assert all(" to " in r[2] and r[3] == 3 for r in rows)
    assert figure.axes[0].get_xlabel().startswith("strength")
