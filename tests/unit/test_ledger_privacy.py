"""``ASSISTANT_LEDGER_STORE_TEXT=false``: no word of a question or answer in any column of
any table of the ledger, whatever the answer check or an error message held."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import MetaData, select

from assistant.ledger.db import connect, is_file
from assistant.ledger.redact import NO_TEXT_ERROR, error_kind, verdict_kind
from assistant.ledger.store import AnswerRecord, Ledger

QUESTION = "Which Harrowgate tariff covers Quenby meadows irrigation?"
ANSWER = "Zelwick charges 4.80 pounds under Tarquin scheme."
GENERATED = "Bellamore Fosswick invoices arrive weekly."


def words(*texts: str) -> set[str]:
    return {w.lower() for t in texts for w in re.findall(r"[A-Za-z0-9.]{4,}", t)}


def text_values(where) -> list[tuple[str, str, str]]:
    """(table, column, value) of every text value in every table the database holds (read
    from the database itself, SQLite file or PostgreSQL, not from the ledger's schema)."""
    engine = connect(where)
    tables = MetaData()
    tables.reflect(engine)
    assert {"answers", "trainings", "conversations", "feedback"} <= set(tables.tables)
    found = []
    with engine.connect() as db:
        for table in tables.sorted_tables:
            for row in db.execute(select(table)):
                found += [(table.name, c, v) for c, v in row._mapping.items()
                          if isinstance(v, str)]
    engine.dispose()
    return found


def test_store_text_off_leaves_no_word_of_question_or_answer_in_any_column(ledger_at):
    path = ledger_at
    led = Ledger(path, store_text=False)
    led.record(AnswerRecord(
        question=QUESTION, answer=ANSWER, generated=GENERATED, chosen_mode="prompt",
        grounding="quoted: not in the documents: Bellamore, Fosswick, weekly",
        prompt_tokens=30, completion_tokens=9, total_ms=120.0))
    led.record(AnswerRecord(question=QUESTION, answer=ANSWER, chosen_mode="prompt",
                            grounding="quoted: copies the worked example: Zelwick"))
    led.record(AnswerRecord(question=QUESTION, chosen_mode="base",
                            error=f"StrataError: the question {QUESTION!r} is too long"))
    led.record(AnswerRecord(question=QUESTION, error=f"{QUESTION} broke it"))
    led.record_training("law", seconds=3.0)
    secret = words(QUESTION, ANSWER, GENERATED)
    leaks = [(t, c, v) for t, c, v in text_values(path) if secret & words(v)]
    assert leaks == []
    rows = led.rows()
    assert [r["grounding"] for r in rows] == [
        "quoted: not in the documents", "quoted: copies the worked example", None, None]
    assert [r["error"] for r in rows] == [None, None, "StrataError", NO_TEXT_ERROR]
    assert rows[0]["total_ms"] == 120.0 and rows[0]["prompt_tokens"] == 30
    assert led.summary()["quoted_rate"] == 1.0  # the figures still work without the text
    if is_file(path):  # not in the file either, nor in its write-ahead log
        raw = path.read_bytes() + path.with_name("ledger.db-wal").read_bytes()
        assert not any(w.encode() in raw.lower() for w in secret)
    led.close()


def test_store_text_on_keeps_everything(ledger_at):
    led = Ledger(ledger_at)
    verdict = "quoted: not in the documents: Bellamore"
    led.record(AnswerRecord(question=QUESTION, answer=ANSWER, generated=GENERATED,
                            grounding=verdict, error="ValueError: x"))
    (row,) = led.rows()
    assert (row["question"], row["answer"], row["generated"]) == (QUESTION, ANSWER, GENERATED)
    assert (row["grounding"], row["error"]) == (verdict, "ValueError: x")
    led.close()


@pytest.mark.parametrize("verdict, kind", [
    (None, None), ("grounded", "grounded"), ("declined", "declined"), ("unchecked", "unchecked"),
    ("quoted: not in the documents: Fees, Bills, 4.80", "quoted: not in the documents"),
    ("quoted: not in the best-ranked sentence: 17", "quoted: not in the best-ranked sentence"),
    ("quoted: states nothing specific from the documents",
     "quoted: states nothing specific from the documents"),
    ("quoted: Fees are 4.80", "quoted"),  # a category that is not plain words is dropped
    ("Fees: 4.80", "checked"),
])
def test_verdict_kind_keeps_the_kind_and_category_never_the_words(verdict, kind):
    assert verdict_kind(verdict) == kind


@pytest.mark.parametrize("error, kind", [
    (None, None), ("", ""), ("StrataError: question 'fees?' too long", "StrataError"),
    ("openai.APIError: bad", "openai.APIError"), ("cancelled by the reader", NO_TEXT_ERROR),
])
def test_error_kind_keeps_the_exception_name(error, kind):
    assert error_kind(error) == kind


def test_store_text_off_keeps_no_word_in_conversations_votes_or_follow_ups(ledger_at):
    from assistant.ledger.conversations import Conversations
    from assistant.ledger.votes import Votes

    path = ledger_at
    led = Ledger(path, store_text=False)
    first = led.record(AnswerRecord(question=QUESTION, answer=ANSWER, chosen_mode="prompt"))
    second = led.record(AnswerRecord(question="And them?", answer=GENERATED, history_turns=2,
                                     standalone_query=f"{QUESTION} And them?"))
    chats = Conversations(led)
    cid = chats.create("ann", title=QUESTION)
    chats.append("ann", cid, "user", QUESTION)
    chats.append("ann", cid, "assistant", ANSWER, answer_id=first)
    chats.rename("ann", cid, GENERATED)
    votes = Votes(led)
    votes.feedback(first, "ann", "dislike", comment=f"{ANSWER} is wrong")
    votes.battle("ann", first, second, "prompt", "layered:law", "a")
    secret = words(QUESTION, ANSWER, GENERATED)
    assert [(t, c, v) for t, c, v in text_values(path) if secret & words(v)] == []
    assert led.answer(second)["history_turns"] == 2
    led.close()
