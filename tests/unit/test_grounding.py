"""Prompt mode's answer check: what counts as grounded, what replaces the rest."""

from __future__ import annotations

import pytest

from assistant.answering import grounding
from assistant.answering.prompts import RAG_EXAMPLE, ContextLine
from tests.fakes import FakeStream
from tests.tiny_models import tiny_services

CONTEXT = ("[1] (Tariffs > Connection) The new connection fee is £148.50. Applications take "
           "17 working days.\n[2] (Board) The chair is Ingrid Vasquez-Holm.")
LINES = [ContextLine(1, "Tariffs > Connection", "The new connection fee is £148.50.", 0.9),
         ContextLine(1, "Tariffs > Connection", "Applications take 17 working days.", 0.5),
         ContextLine(2, "Board", "The chair is Ingrid Vasquez-Holm.", 0.7)]
EXAMPLE = RAG_EXAMPLE[1]


@pytest.mark.parametrize("answer, grounded, why", [
    ("The new connection fee is £148.50 [1].", True, ""),
    ("The chair is Ingrid Vasquez-Holm [2].", True, ""),
    ("The documents do not say.", True, ""),
    ("The fee is £180 [1].", False, "not in the documents: 180"),
    ("The chair is Marta Okonkwo.", False, "not in the documents: Marta, Okonkwo"),
    ("The fee is explained in the passage [1].", False, "nothing specific"),
    # a context number in the worked example's wording: the demonstration, not the facts
    ("The most you can be charged is 17 [1].", False, "copies the worked example: most, charged"),
])
def test_check_accepts_only_answers_the_context_supports(answer, grounded, why):
    result = grounding.check(answer, CONTEXT, "How much is the new connection fee?", EXAMPLE)
    assert result.grounded is grounded
    if not grounded:
        assert why in result.reason()


def test_specifics_in_the_question_are_neither_credit_nor_fault():
    question = "Is the fee for 2026 still £148.50?"
    assert not grounding.check("Yes, in 2026 it is £148.50.", CONTEXT, question).grounded
    assert grounding.check("In 2026 it is £148.50, taking 17 working days.", CONTEXT,
                           question).grounded


def test_prompt_mode_answers_must_agree_with_the_best_ranked_sentence():
    """A specific from the context but not from the sentence the ranking put first: the
    reader picked the wrong sentence (see grounding.py for how often, measured)."""
    question, best = "How much is the new connection fee?", "The new connection fee is £148.50."
    wrong = grounding.check("It is 17 [1].", CONTEXT, question, agree=best)
    assert not wrong.grounded and wrong.reason() == "not in the best-ranked sentence: 17"
    assert grounding.check("It is 17 [1].", CONTEXT, question).grounded  # no agreement asked
    assert grounding.check("It is £148.50 [1].", CONTEXT, question, agree=best).grounded
    assert grounding.check("The documents do not say.", CONTEXT, question, agree=best).grounded
    # the best sentence without its section: a heading's names are no answer
    assert grounding.best_text(LINES, 1) == "The new connection fee is £148.50."
    assert not grounding.check("See Tariffs [1].", CONTEXT, question,
                               agree=grounding.best_text(LINES, 1)).grounded


def test_quote_takes_the_best_sentences_in_reading_order():
    ranked = sorted(LINES, key=lambda line: -line.score)  # a ranking is best first
    text = grounding.quote(ranked, 2)
    assert text == ("The documents say: \u201cThe new connection fee is £148.50.\u201d [1] "
                    "\u201cThe chair is Ingrid Vasquez-Holm.\u201d [2]")
    assert "17 working days" in grounding.quote(ranked, 3)


FEES = ("# Fees\n\n## Connection\n\n"
        "The new connection fee is 148.50 pounds. Meters are read quarterly.\n")


@pytest.fixture
def services(tmp_path, tiny_base, adapters_dir):
    return tiny_services(tmp_path, tiny_base, adapters_dir, FEES)


def _prompt_answer(services, monkeypatch, text):
    monkeypatch.setattr(services.generator, "stream", lambda *a, **k: FakeStream(text))
    return services.pipeline.ask("What is the new connection fee?", mode="prompt")


def test_pipeline_quotes_the_documents_instead_of_a_made_up_answer(services, monkeypatch):
    answer = _prompt_answer(services, monkeypatch, "The most you can be charged is £4.80 [1].")
    assert answer.text.startswith(grounding.QUOTE_LEAD) and "148.50" in answer.text
    assert answer.grounding.startswith("quoted: not in the documents: 4.80")
    assert answer.generated == "The most you can be charged is £4.80 [1]."
    [row] = services.ledger.rows()
    assert (row["answer"], row["grounding"], row["generated"]) == (
        answer.text, answer.grounding, answer.generated)


def test_cli_and_chat_say_what_replaced_the_streamed_text(services, monkeypatch):
    from assistant.commands.ask import _render
    from assistant.ui.common import route_line

    answer = _prompt_answer(services, monkeypatch, "The fee is £4.80 [1].")
    assert f"replaced by quotes (not in the documents: 4.80):\n{answer.text}" in _render(
        answer.to_dict())
    assert "quoted instead of the model's answer (not in the documents: 4.80)" in route_line(answer)
    kept = _prompt_answer(services, monkeypatch, "The fee is 148.50 pounds [1].")
    assert "replaced" not in _render(kept.to_dict()) and "quoted" not in route_line(kept)


def test_pipeline_quotes_an_answer_in_the_worked_examples_words(services, monkeypatch):
    answer = _prompt_answer(services, monkeypatch, "The most you can be charged is 148.50 [1].")
    assert answer.grounding == "quoted: copies the worked example: most, charged"


def test_pipeline_keeps_a_grounded_answer(services, monkeypatch):
    answer = _prompt_answer(services, monkeypatch, "The fee is 148.50 pounds [1].")
    assert answer.text == "The fee is 148.50 pounds [1]."
    assert (answer.grounding, answer.generated) == ("grounded", None)


def test_the_check_can_be_turned_off(tmp_path, tiny_base, adapters_dir, monkeypatch):
    services = tiny_services(tmp_path, tiny_base, adapters_dir, FEES, quote_sentences=0)
    answer = _prompt_answer(services, monkeypatch, "The fee is £4.80.")
    assert (answer.text, answer.grounding, answer.generated) == (
        "The fee is £4.80.", "unchecked", None)


def test_metrics_summary_shows_the_share_of_quoted_answers():
    from assistant.ui.metrics import summary_markdown

    base = {"count": 4, "errors": 0, "p50_total_ms": 900, "total_cost_usd": 0.01}
    assert "quotes" not in summary_markdown({**base, "quoted_rate": None})
    assert "shown as quotes (the model's was unsupported): 50%" in summary_markdown(
        {**base, "quoted_rate": 0.5})


def test_a_quoted_passage_the_model_was_not_shown_joins_the_sources(services):
    from assistant.answering.answer import Prepared, source_of
    from assistant.retrieval.store import Hit

    hits = [Hit(id=f"c{n}", text=text, source=f"doc{n}.md", domain="d", section="", page=None,
                chunk=0, score=0.5) for n, text in ((1, "Meters are read quarterly."),
                                                    (2, "The new connection fee is £148.50."))]
    shown = [ContextLine(1, "", "Meters are read quarterly.", 0.4)]
    ranked = [ContextLine(2, "", "The new connection fee is £148.50.", 0.9), *shown]
    prepared = Prepared([], [source_of(1, hits[0])], shown, ranked, hits=hits)
    text, verdict, generated = services.pipeline.ground(
        "What is the new connection fee?", "It is £4.80 [1].", prepared)
    assert "148.50" in text and "[2]" in text and generated == "It is £4.80 [1]."
    assert [s.name for s in prepared.sources] == ["doc1.md", "doc2.md"]


def test_layered_answers_are_checked_too_but_not_for_the_worked_example(services, monkeypatch):
    """Layered mode shows no worked example, so its words are no fault there."""
    monkeypatch.setattr(services.generator, "stream",
                        lambda *a, **k: FakeStream("The most you can be charged is 148.50 [1]."))
    kept = services.pipeline.ask("What is the new connection fee?", mode="layered",
                                 adapter="alpha")
    assert (kept.mode, kept.grounding, kept.generated) == ("layered", "grounded", None)
    monkeypatch.setattr(services.generator, "stream",
                        lambda *a, **k: FakeStream("It is £95, set by Ingrid Holm."))
    quoted = services.pipeline.ask("What is the new connection fee?", mode="layered",
                                   adapter="alpha")
    assert quoted.text.startswith(grounding.QUOTE_LEAD) and "148.50" in quoted.text
    assert quoted.grounding == "quoted: not in the documents: 95, Ingrid, Holm"


@pytest.mark.parametrize("mode, agree_sentences, verdict", [
    ("prompt", 1, "quoted: not in the best-ranked sentence: 17"),
    ("prompt", 0, "grounded"),  # the setting turns the agreement test off
    ("layered", 1, "quoted: not in the best-ranked sentence: 17"),  # a reading adapter's slip
    ("layered", 0, "grounded"),
])
def test_the_pipeline_asks_answers_to_agree_with_the_ranking(
        tmp_path, tiny_base, adapters_dir, mode, agree_sentences, verdict):
    from assistant.answering.answer import Prepared
    from assistant.retrieval.store import Hit

    services = tiny_services(tmp_path, tiny_base, adapters_dir, FEES,
                             agree_sentences=agree_sentences)
    ranked = sorted(LINES, key=lambda line: -line.score)
    hits = [Hit(id=f"c{n}", text=text, source=f"doc{n}.md", domain="d", section="", page=None,
                chunk=0, score=0.5) for n, text in enumerate(CONTEXT.split("\n"), start=1)]
    prepared = Prepared([], [], LINES, ranked, CONTEXT, hits=hits)
    text, got, generated = services.pipeline.ground(
        "How much is the new connection fee?", "It takes 17 working days [1].", prepared, mode)
    assert got == verdict
    assert (generated is None) is (verdict == "grounded")
