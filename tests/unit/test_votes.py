"""Feedback and arena battles: stored against real answer rows, one vote per voter, bad
votes refused, comments dropped with text storage off, and the counts per strategy."""

from __future__ import annotations

import pytest

from assistant.errors import StrataError
from assistant.ledger.store import AnswerRecord, Ledger
from assistant.ledger.votes import Votes, adapter_of, strategy


@pytest.fixture
def ledger(ledger_at):
    led = Ledger(ledger_at)  # SQLite, and PostgreSQL in the scale tier
    yield led
    led.close()


def answer(ledger, mode="prompt", adapter=None):
    return ledger.record(AnswerRecord(question="q", answer="a", chosen_mode=mode,
                                      adapter=adapter))


def test_a_second_vote_by_the_same_owner_replaces_the_first(ledger):
    votes = Votes(ledger)
    a1 = answer(ledger)
    votes.feedback(a1, "ann", "like")
    votes.feedback(a1, "bob", "like", "  ")  # an empty comment is no comment
    second = votes.feedback(a1, "ann", "dislike", "Wrong fee.")
    rows = votes.feedback_for(a1)
    assert [(r["owner"], r["value"], r["comment"]) for r in rows] == [
        ("bob", "like", None), ("ann", "dislike", "Wrong fee.")]
    assert rows[1]["id"] == second
    assert votes.feedback_for("other") == []


@pytest.mark.parametrize("args, message", [
    (("missing", "ann", "like"), "no such answer"),
    ((None, "ann", "like"), "no such answer"),
    (("ANSWER", "ann", "love"), "like' or 'dislike"),
    (("ANSWER", "", "like"), "voter"),
    (("ANSWER", "ann", "like", "x" * 2001), "too long"),
])
def test_bad_feedback_is_refused(ledger, args, message):
    votes = Votes(ledger)
    real = answer(ledger)
    args = tuple(real if a == "ANSWER" else a for a in args)
    with pytest.raises(StrataError, match=message):
        votes.feedback(*args)
    assert votes.feedback_for(real) == []


def test_battles_are_stored_and_a_revote_replaces(ledger):
    votes = Votes(ledger)
    a, b = answer(ledger, "prompt"), answer(ledger, "adapter", "law")
    votes.battle("ann", a, b, "prompt", "adapter:law", "a")
    votes.battle("bob", a, b, "prompt", "adapter:law", "tie")
    votes.battle("ann", a, b, "prompt", "adapter:law", "both_bad")
    assert [(r["owner"], r["winner"], r["a_answer_id"], r["b_answer_id"], r["b_strategy"])
            for r in votes.battles()] == [("bob", "tie", a, b, "adapter:law"),
                                          ("ann", "both_bad", a, b, "adapter:law")]


@pytest.mark.parametrize("change, message", [
    ({"winner": "A"}, "winner"),
    ({"winner": "draw"}, "winner"),
    ({"owner": ""}, "voter"),
    ({"b_strategy": "prompt"}, "two different strategies"),
    ({"a_strategy": "Prompt mode"}, "not a strategy"),
    ({"a_strategy": "adapter:"}, "not a strategy"),
    ({"b_answer_id": "A"}, "two different answers"),
    ({"b_answer_id": "missing"}, "no such answer"),
])
def test_bad_battles_are_refused(ledger, change, message):
    votes = Votes(ledger)
    ids = {"A": answer(ledger), "B": answer(ledger, "base")}
    call = {"owner": "ann", "a_answer_id": "A", "b_answer_id": "B", "a_strategy": "prompt",
            "b_strategy": "base", "winner": "a", **change}
    for key in ("a_answer_id", "b_answer_id"):
        call[key] = ids.get(call[key], call[key])
    with pytest.raises(StrataError, match=message):
        votes.battle(**call)
    assert votes.battles() == []


def test_comments_are_dropped_with_text_storage_off(ledger_at):
    led = Ledger(ledger_at, store_text=False)
    votes = Votes(led)
    a = answer(led)
    votes.feedback(a, "ann", "dislike", "Quenby tariff is wrong")
    (row,) = votes.feedback_for(a)
    assert (row["value"], row["comment"]) == ("dislike", None)
    led.close()


def test_feedback_counts_per_strategy(ledger):
    votes = Votes(ledger)
    p1, p2, law = answer(ledger), answer(ledger), answer(ledger, "layered", "law")
    votes.feedback(p1, "ann", "like", "good")
    votes.feedback(p2, "ann", "dislike")
    votes.feedback(p2, "bob", "dislike")
    votes.feedback(law, "ann", "like")
    assert votes.feedback_counts() == [
        {"strategy": "prompt", "mode": "prompt", "adapter": None, "likes": 1, "dislikes": 2,
         "comments": 1},
        {"strategy": "layered:law", "mode": "layered", "adapter": "law", "likes": 1,
         "dislikes": 0, "comments": 0}]


def test_strategy_names():
    assert strategy("prompt") == "prompt" and strategy("adapter", "law") == "adapter:law"
    assert adapter_of("layered:law") == "law" and adapter_of("base") is None
