"""Conversations: the standalone query of a follow-up, history checks and trimming."""

from __future__ import annotations

import pytest

from assistant.answering import conversation as conv
from assistant.errors import StrataError

TOILETS = [
    {"role": "user", "content": "How much is the rebate for a water-saving toilet?"},
    {"role": "assistant", "content": "The rebate is 75 pounds per toilet."},
]


def test_a_follow_up_is_searched_with_the_question_it_continues():
    got = conv.standalone("How many of them can one household claim?", TOILETS)
    assert got.kind == "follow-up" and got.uses_history
    assert got.query == ("How much is the rebate for a water-saving toilet? "
                         "How many of them can one household claim?")
    assert got.question == "How many of them can one household claim?"


@pytest.mark.parametrize("message", ["And for businesses?", "What about flats?",
                                     "Is that per year?", "Why?",
                                     "How often can a household get one?",
                                     "What is the fine for ignoring one, then?"])
def test_short_and_continuing_messages_are_follow_ups(message):
    assert conv.standalone(message, TOILETS).kind == "follow-up"


@pytest.mark.parametrize("message", ["What is the late payment charge on a water bill?",
                                     "How much water does one household use a day?"])
def test_a_question_that_stands_alone_is_searched_alone(message):
    got = conv.standalone(message, TOILETS)
    assert (got.kind, got.query) == ("alone", message)


def test_a_topic_change_drops_the_old_topic():
    got = conv.standalone("Thanks. Unrelated: what is the capital of Japan?", TOILETS)
    assert got.kind == "topic change" and not got.uses_history
    assert got.query == got.question == "what is the capital of Japan?"
    assert "toilet" not in got.query


def test_without_history_every_message_stands_alone():
    assert conv.standalone("How many of them?", []).kind == "alone"


def test_a_chain_of_follow_ups_reaches_back_to_the_question_that_stood_alone():
    history = [*TOILETS, {"role": "user", "content": "Is it per toilet?"},
               {"role": "assistant", "content": "Yes."}]
    got = conv.standalone("And how do I claim it?", history)
    assert got.query.startswith("How much is the rebate") and "Is it per toilet?" in got.query
    older = [{"role": "user", "content": "What is the standing charge?"}, *history]
    assert "standing charge" not in conv.standalone("And how do I claim it?", older).query


def test_a_topic_change_in_the_history_starts_the_chain_after_its_marker():
    history = [{"role": "user", "content": "Unrelated: who reads the meters?"},
               {"role": "assistant", "content": "A meter reader."}]
    got = conv.standalone("How often do they come?", history)
    assert got.query == "who reads the meters? How often do they come?"


def test_history_is_checked_and_blank_turns_dropped():
    turns = conv.check_history([{"role": "user", "content": " hi "},
                                {"role": "assistant", "content": "  "}])
    assert turns == [{"role": "user", "content": "hi"}]
    assert conv.check_history(None) == []
    for bad, message in [("text", "must be a list"), ([["user", "hi"]], "message 1"),
                         ([{"role": "system", "content": "x"}], "role must be user"),
                         ([{"role": "user", "content": 3}], "content must be text"),
                         ([{"role": "user", "content": "x"}] * 201, "too long")]:
        with pytest.raises(StrataError, match=message):
            conv.check_history(bad)


def test_trim_keeps_the_newest_turns_within_the_budget_and_starts_with_a_user_turn():
    history = [{"role": "user", "content": "one two"}, {"role": "assistant", "content": "three"},
               {"role": "user", "content": "four five six"},
               {"role": "assistant", "content": "seven"}]
    count = lambda text: len(text.split())  # noqa: E731
    assert conv.trim(history, 100, count) == history
    assert conv.trim(history, 0, count) == []
    # 12 tokens fit the last two turns (7 + 5); the oldest two drop first.
    assert conv.trim(history, 12, count) == history[2:]
    # 11 fits only the last answer, which is dropped: never an answer without its question.
    assert conv.trim(history, 11, count) == []
