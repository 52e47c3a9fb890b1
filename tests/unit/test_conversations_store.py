"""Saved conversations: per owner (another owner's id is not found), newest first, titles,
truncation for retry/edit, no text with text storage off, and older ledgers upgrade."""

from __future__ import annotations

import pytest

from assistant.errors import StrataError
from assistant.ledger import migrations
from assistant.ledger.conversations import Conversation, Conversations
from assistant.ledger.db import connect
from assistant.ledger.store import AnswerRecord, Ledger
from tests.unit.test_ledger_privacy import text_values


@pytest.fixture
def ledger(ledger_at):
    led = Ledger(ledger_at)  # SQLite, and PostgreSQL in the scale tier
    yield led
    led.close()


@pytest.fixture
def store(ledger):
    return Conversations(ledger)


def test_create_append_get_and_list(store):
    first = store.create("ann")
    second = store.create("ann", "Meter readings")
    assert [c.id for c in store.list("ann")] == [second, first]  # newest first
    assert store.append("ann", first, "user", "What is the connection fee?") == 0
    store.append("ann", first, "assistant", "148.50 pounds.", answer_id="a1")
    listed = store.list("ann")
    assert [c.id for c in listed] == [first, second]  # the one changed last comes first
    assert (listed[0].title, listed[0].turns) == ("What is the connection fee?", 2)
    assert listed[1].title == "Meter readings" and listed[1].turns == 0
    conversation = store.get("ann", first)
    assert conversation.messages == [
        {"role": "user", "content": "What is the connection fee?", "answer_id": None},
        {"role": "assistant", "content": "148.50 pounds.", "answer_id": "a1"}]
    assert conversation.history() == [
        {"role": "user", "content": "What is the connection fee?"},
        {"role": "assistant", "content": "148.50 pounds."}]
    assert store.latest("ann") == first and store.latest("bob") is None
    assert store.stores_text


def test_rename_truncate_delete(store):
    cid = store.create("ann")
    for role, text in [("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2")]:
        store.append("ann", cid, role, text)
    store.rename("ann", cid, "  Fees\n and   meters ")
    assert store.get("ann", cid).title == "Fees and meters"
    store.truncate("ann", cid, 2)
    assert [m["content"] for m in store.get("ann", cid).messages] == ["q1", "a1"]
    assert store.append("ann", cid, "user", "q2 edited") == 2
    store.delete("ann", cid)
    assert store.list("ann") == []
    with pytest.raises(StrataError, match="no such conversation"):
        store.get("ann", cid)


def test_another_owner_cannot_read_change_or_delete(store):
    cid = store.create("ann", "private")
    store.append("ann", cid, "user", "my question")
    attempts = [lambda: store.get("bob", cid), lambda: store.rename("bob", cid, "mine"),
                lambda: store.delete("bob", cid), lambda: store.append("bob", cid, "user", "x"),
                lambda: store.truncate("bob", cid, 0), lambda: store.get("ann", "no-such-id")]
    for attempt in attempts:
        with pytest.raises(StrataError, match="^no such conversation$"):
            attempt()
    assert store.list("bob") == [] and store.latest("bob") is None
    kept = store.get("ann", cid)
    assert (kept.title, len(kept.messages)) == ("private", 1)


@pytest.mark.parametrize("call, message", [
    (lambda s, cid: s.append("ann", cid, "system", "x"), "role"),
    (lambda s, cid: s.append("ann", cid, "user", "x" * 100_001), "at most"),
    (lambda s, cid: s.create(""), "owner"),
    (lambda s, cid: s.truncate("ann", cid, -1), "negative"),
])
def test_bad_calls_are_refused(store, call, message):
    cid = store.create("ann")
    with pytest.raises(StrataError, match=message):
        call(store, cid)


def test_a_long_first_question_makes_a_short_title(store):
    cid = store.create("ann")
    store.append("ann", cid, "user", "word " * 50)
    title = store.get("ann", cid).title
    assert len(title) <= 80 and title.endswith("...")


def test_store_text_off_keeps_ids_counts_and_times_only(ledger_at):
    led = Ledger(ledger_at, store_text=False)
    store = Conversations(led)
    cid = store.create("ann", "Secret title")
    store.append("ann", cid, "user", "Secret question")
    store.append("ann", cid, "assistant", "Secret answer", answer_id="a1")
    store.rename("ann", cid, "Secret rename")
    assert not store.stores_text
    (info,) = store.list("ann")
    assert (info.title, info.turns) == ("", 2) and info.created and info.updated
    conversation = store.get("ann", cid)
    assert isinstance(conversation, Conversation) and conversation.title == ""
    assert conversation.messages == [{"role": "user", "content": "", "answer_id": None},
                                     {"role": "assistant", "content": "", "answer_id": "a1"}]
    assert conversation.history() == []
    led.close()
    texts = [v for t, _, v in text_values(ledger_at) if t in ("conversations", "messages")]
    assert texts and not [v for v in texts if "secret" in v.lower()]


def test_a_ledger_made_before_conversations_upgrades(ledger_at):
    """A database with the first eight migrations opens: its answers stay and gain the
    follow-up columns, and the conversation and vote tables appear."""
    path = ledger_at
    engine = connect(path)
    migrations.migrate(engine, upto=8)
    with engine.begin() as db:
        db.exec_driver_sql("INSERT INTO answers (id, created_at, question, answer) VALUES "
                           "('old1', '2024-05-01T00:00:00.000+00:00', 'old q', 'old a')")
    engine.dispose()
    led = Ledger(path)
    assert led.schema_version() == len(migrations.MIGRATIONS)
    old = led.answer("old1")
    assert old is not None and old["question"] == "old q"
    assert old["standalone_query"] is None and old["history_turns"] == 0
    store = Conversations(led)
    cid = store.create("ann")
    store.append("ann", cid, "user", "hello")
    assert store.list("ann")[0].turns == 1
    assert led.query("SELECT count(*) AS n FROM feedback")[0]["n"] == 0
    led.close()


def test_follow_up_columns_are_recorded(ledger):
    answer_id = ledger.record(AnswerRecord(question="And businesses?", answer="x",
                                           standalone_query="What is the fee? And businesses?",
                                           history_turns=2))
    row = ledger.answer(answer_id)
    assert row is not None
    assert (row["standalone_query"], row["history_turns"]) == (
        "What is the fee? And businesses?", 2)
    assert ledger.answer("missing") is None


def test_search_matches_question_answer_and_standalone_query(ledger):
    ids = [ledger.record(AnswerRecord(question=q, answer=a, standalone_query=s)) for q, a, s in [
        ("What is the fee?", "148.50 pounds", None),
        ("And businesses?", "Higher.", "What is the fee? And businesses?"),
        ("Capital of Japan?", "Tokyo 100%", None)]]
    assert [r["id"] for r in ledger.search("FEE")] == [ids[1], ids[0]]  # newest first
    assert [r["id"] for r in ledger.search("tokyo")] == [ids[2]]
    assert [r["id"] for r in ledger.search("100%")] == [ids[2]]  # % is a character here
    assert ledger.search("1_8") == []  # and so is _
    assert len(ledger.search("e", limit=2)) == 2
    with pytest.raises(StrataError, match="nothing"):
        ledger.search("  ")
