"""Model rewordings of training questions: the prompt, the parsing, every check that drops
one, and their place in `assistant synth` (a scripted model stands in for the generator)."""

from __future__ import annotations

import pytest

from assistant.training.paraphrase import EXAMPLES, asks, messages_for, parse, verdict
from assistant.training.synth import Options, is_asked, synthesize
from tests.unit.test_synth import PASSAGES, keyword_search

SOURCE = "When was the Cooperative founded?"


def test_the_request_is_a_few_shot_conversation_ending_in_the_question():
    turns = messages_for(SOURCE)
    assert turns[0]["role"] == "system"
    assert [t["role"] for t in turns[1:-1]] == ["user", "assistant"] * len(EXAMPLES)
    assert turns[-1] == {"role": "user", "content": SOURCE}


def test_a_reply_is_split_into_rewordings_without_labels_bullets_or_repeats():
    reply = ("Rewrite: What year was the co-op set up?\n\n- Since when has the co-op existed?\n"
             "2) Question: What year was the co-op set up?\n  ")
    assert parse(reply) == ["What year was the co-op set up?", "Since when has the co-op existed?"]


@pytest.mark.parametrize("question, kind", [
    ("Who leads the board?", "person"), ("Since when has it existed?", "time"),
    ("In what year was it set up?", "time"), ("How many staff work there?", "count"),
    ("What do I pay for a meter?", "amount"), ("How long does it take?", "duration"),
    ("Where is the office?", "place"), ("What is the registered number?", "open"),
])
def test_what_a_question_asks_for_comes_from_its_first_words(question, kind):
    assert asks(question) == kind


@pytest.mark.parametrize("candidate, why", [
    ("What year was the co-op set up?", "kept"),
    ("The co-op was set up long ago", "not a question"),
    ("When?", "not 3 to 25 words long"),
    ("Was the Cooperative founded in 1987?", "gives the fact away"),
    ("Who founded the Cooperative?", "asks for a person, not a time"),
    ("How much did the Cooperative cost to set up?", "asks for an amount, not a time"),
    ("When was the library opened and founded?", "repeats an example from the prompt"),
    ("when was the Cooperative founded", "copies a phrasing the fact has"),
])
def test_each_check_drops_the_rewording_it_is_for(candidate, why):
    assert verdict(candidate, SOURCE, ["1987"], [SOURCE]) == why


class ScriptedModel:
    """Replies with rewordings made from the question: two usable, one off the fact, one that
    gives a number away. Records what it was asked."""

    def __init__(self):
        self.asked = []

    def __call__(self, questions):
        self.asked += questions
        return [f"Rewrite: Tell me again, {q[0].lower()}{q[1:]}\n"
                f"Could you say {q[0].lower()}{q[1:]}\nWhere can I buy a bicycle?\n"
                "Is it 1987 or 63?" for q in questions]


def topical_search():
    """The keyword search, finding nothing for a question that shares no word with any
    passage (the bicycle), as a knowledge base's top k would miss the fact's passage."""
    search = keyword_search()
    vocabulary = {w.lower().strip(".,:;?") for p in PASSAGES for w in p.text.split()}

    def topical(questions):
        return [found if {w.lower().strip("?,") for w in q.split()} & vocabulary - {"a", "i"}
                else [] for q, found in zip(questions, search(questions), strict=True)]

    return topical


def test_synth_adds_checked_model_rewordings_to_training_only():
    model = ScriptedModel()
    rules = synthesize(PASSAGES, topical_search(), Options(phrasings=2, eval_share=0.5))
    both = synthesize(PASSAGES, topical_search(),
                      Options(phrasings=2, eval_share=0.5, model_rewordings=1), model)
    assert model.asked and all(is_asked(q) for q in model.asked)  # no echo forms
    by_id = {f.fact_id: f for f in rules.facts}
    for fact in both.facts:
        before = by_id[fact.fact_id]
        assert fact.train[:len(before.train)] == before.train  # rule phrasings unchanged
        assert fact.test == before.test  # held-out questions stay rule-made
        assert fact.model_made == len(fact.train) - len(before.train) <= 1
        assert fact.test is None or fact.test.lower() not in {t.lower() for t in fact.train}
    assert both.counts["model_pairs"] == sum(f.model_made for f in both.facts) > 0
    reasons = {d["reason"] for d in both.dropped if d["what"] == "model rewording"}
    assert "gives the fact away" in reasons
    assert "does not retrieve the fact's passage in the top k" in reasons
    assert not any("bicycle" in q for f in both.facts for q in f.train)


def test_without_a_model_or_with_zero_rewordings_nothing_is_asked():
    model = ScriptedModel()
    result = synthesize(PASSAGES, keyword_search(), Options(model_rewordings=0), model)
    assert model.asked == [] and result.counts["model_pairs"] == 0
