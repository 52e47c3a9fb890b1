"""Prompt building: sentence splitting, condensing within a budget, numbered context."""

from __future__ import annotations

from assistant.answering import prompts
from assistant.retrieval.store import Hit
from tests.retrieval_helpers import HashEmbedder


def hit(text: str, section: str = "Fees", score: float = 0.5) -> Hit:
    return Hit(id=text[:8], text=f"{section}\n\n{text}" if section else text, source="f.md",
               domain="d", section=section, page=None, chunk=0, score=score)


def words(text: str) -> int:
    return len(text.split())


def condense(question: str, hits: list[Hit], max_tokens: int) -> list[prompts.ContextLine]:
    """Rank with the hashing embedder, then condense (the pipeline's two steps)."""
    embedder = HashEmbedder()
    ranked = prompts.rank_sentences(question, hits, embedder.embed_query(question),
                                    embedder.embed_documents)
    return prompts.condense(ranked, words, max_tokens)


def test_split_sentences_keeps_numbers_and_rows_whole():
    text = "The fee is £148.50 per connection. Apply 17 days ahead.\n| Band A | £7.85 |\n- item one"
    assert prompts.split_sentences(text) == [
        "The fee is £148.50 per connection.", "Apply 17 days ahead.", "| Band A | £7.85 |",
        "item one",
    ]


def test_condense_picks_the_relevant_sentences_within_budget_in_reading_order():
    hits = [
        hit("Meters are read each quarter. The connection fee is 148.50 pounds. "
            "Offices open at nine."),
        hit("Leaks must be reported quickly. The connection fee covers the survey.",
            section="Leaks"),
    ]
    question = "what is the connection fee"
    lines = condense(question, hits, max_tokens=16)
    texts = [line.text for line in lines]
    assert "The connection fee is 148.50 pounds." in texts
    assert "Offices open at nine." not in texts
    sections = {line.section for line in lines}
    assert sum(words(t) + 2 for t in texts) + sum(words(s) + 4 for s in sections) <= 16
    assert [(line.passage) for line in lines] == sorted(line.passage for line in lines)


def test_condense_shows_the_best_sentence_even_over_budget_and_nothing_else_then():
    """A long table row can exceed the budget alone; an empty context is worse."""
    embedder = HashEmbedder()
    row = "zone code: HV-C; zone name: Orrin Vale; towns: Little Orrin, Pellow End; served: 861"
    hits = [hit(row + ".\nMeters are read each quarter.", section="Zones")]
    question = "which zone code is Pellow End in"
    ranked = prompts.rank_sentences(question, hits, embedder.embed_query(question),
                                    embedder.embed_documents)
    assert ranked[0].text.startswith("zone code: HV-C")
    lines = prompts.condense(ranked, words, max_tokens=8)
    assert [line.text for line in lines] == [ranked[0].text]


def test_context_is_numbered_by_passage_with_its_section_once():
    lines = [prompts.ContextLine(1, "Fees", "A.", 0.9), prompts.ContextLine(1, "Fees", "B.", 0.8),
             prompts.ContextLine(2, "Leaks", "C.", 0.7)]
    assert prompts.format_context(lines) == "[1] (Fees) A. B.\n[2] (Leaks) C."


def test_rag_messages_show_a_worked_example_then_the_question_last():
    messages = prompts.rag_messages("What is the fee?", "[1] (Fees) A.")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"].endswith("Question: What is the fee?")
    assert "[1] (Fees) A." in messages[-1]["content"]
    assert "(no passages found)" in prompts.rag_messages("q", "")[-1]["content"]


def test_sub_headings_rank_the_sentences_under_them_but_are_never_shown():
    text = ("Reporting an emergency\nOur line is open all day. Call **0800 414 9127** to report "
            "a burst main.\nResponse time targets\nCrews arrive within 90 minutes.")
    question = "response time targets for crews"
    lines = condense(question, [hit(text, section="Outages")], max_tokens=200)
    texts = [line.text for line in lines]
    assert "Reporting an emergency" not in texts and "Response time targets" not in texts
    assert "Call 0800 414 9127 to report a burst main." in texts  # markdown bold dropped
    assert max(lines, key=lambda line: line.score).text == "Crews arrive within 90 minutes."
    assert prompts.is_heading("Lifeline Register") and not prompts.is_heading("Band A | £7.85")


def test_layered_messages_keep_the_adapters_own_turn_with_passages_as_background():
    messages = prompts.layered_messages("What is the fee?", "[1] (Fees) A.", "You are X.")
    assert messages == [
        {"role": "system", "content": "You are X.\n\nFrom the documents:\n[1] (Fees) A."},
        {"role": "user", "content": "What is the fee?"},  # exactly as in the adapter's training
    ]
    assert prompts.layered_messages("q", "", "You are X.")[0]["content"] == "You are X."


def test_a_sentence_adding_a_number_or_name_the_question_lacks_counts_as_specific():
    question = "What does the Fenmoor office charge to reconnect?"
    assert prompts.adds_specific(question, "The reconnection fee is £63.25.")
    assert prompts.adds_specific(question, "Reconnections are handled by Priya Achterberg.")
    assert not prompts.adds_specific(question, "Reconnection is charged by the Fenmoor office.")
    assert not prompts.adds_specific(question, "Members are entitled to:")


def test_condense_prefers_the_sentence_with_the_specific_over_a_lead_in():
    hits = [hit("The connection fee is explained below:\nThe connection fee is 148.50 pounds.")]
    question = "what is the connection fee"
    lines = condense(question, hits, max_tokens=14)
    assert [line.text for line in lines] == ["The connection fee is 148.50 pounds."]
