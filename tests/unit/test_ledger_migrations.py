"""Migrations registered with ``@migration``: databases made by earlier versions open,
keep their rows and move forward; the names recorded stay the names old databases hold."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import Float, Integer, String, UniqueConstraint, inspect

from assistant.ledger import migrations, schema
from assistant.ledger.db import connect
from assistant.ledger.migrations import MIGRATIONS, migrate, migration
from assistant.ledger.store import Ledger

# What the released versions recorded in _migrations, in order: never to change.
RELEASED = ["m001_create_answers", "m002_routing", "m003_timings", "m004_costs",
            "m005_trainings", "m006_grounding", "m007_scrub_textless_rows",
            "m008_backend_and_profile", "m009_follow_ups", "m010_conversations", "m011_votes"]

# The answers table as versions with four migrations left it, written out by hand (not by
# today's migration functions), with the _migrations rows those versions wrote.
V4_SCHEMA = """
CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT);
CREATE TABLE answers (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, question TEXT, answer TEXT,
    chosen_mode TEXT, base_model TEXT, prompt_tokens INTEGER, completion_tokens INTEGER,
    total_ms REAL, error TEXT, session_id TEXT, requested_mode TEXT, adapter TEXT, reason TEXT,
    router_scores TEXT, quantization TEXT, retrieved TEXT, router_ms REAL, retrieval_ms REAL,
    ttft_ms REAL, tokens_per_s REAL, cost_usd REAL, token_cost_usd REAL,
    compute_cost_usd REAL, hardware TEXT);
CREATE INDEX answers_created_at ON answers(created_at);
CREATE INDEX answers_adapter ON answers(adapter);
"""


def old_database(path, names):
    db = sqlite3.connect(path)
    db.executescript(V4_SCHEMA)
    db.executemany("INSERT INTO _migrations VALUES (?, '2024-05-01T00:00:00.000+00:00')",
                   [(n,) for n in names])
    db.execute("INSERT INTO answers (id, created_at, question, answer, chosen_mode, "
               "requested_mode, prompt_tokens, completion_tokens, total_ms, router_scores, "
               "retrieved, cost_usd) VALUES ('old1', '2024-05-01T00:00:00.000+00:00', 'old q', "
               "'old a', 'prompt', 'prompt', 12, 7, 345.0, '{\"retrieval\": 0.5}', '[]', 0.001)")
    db.commit()
    db.close()


def kind(column_type) -> str:
    for name, family in (("integer", Integer), ("float", Float), ("text", String)):
        if isinstance(column_type, family):
            return name
    raise AssertionError(f"unexpected column type {column_type!r}")


def assert_matches_schema(where) -> None:
    """The tables, columns (names, order, kinds), keys and indexes the database holds are
    what schema.py declares: the migrations and the statements' tables agree."""
    engine = connect(where)
    found = inspect(engine)
    assert set(found.get_table_names()) == set(schema.metadata.tables)
    for table in schema.metadata.sorted_tables:
        columns = found.get_columns(table.name)
        assert [c["name"] for c in columns] == [c.name for c in table.columns], table.name
        for col, declared in zip(columns, table.columns):
            assert kind(col["type"]) == kind(declared.type), (table.name, col)
            if not declared.primary_key:  # SQLite lets a TEXT key be NULL: not ours to test
                assert col["nullable"] == declared.nullable, (table.name, col)
        key = found.get_pk_constraint(table.name)["constrained_columns"]
        assert key == [c.name for c in table.primary_key], table.name
        indexes = {(i["name"], tuple(i["column_names"]), bool(i["unique"]))
                   for i in found.get_indexes(table.name) if not i.get("duplicates_constraint")}
        assert indexes == {(i.name, tuple(c.name for c in i.columns), i.unique)
                           for i in table.indexes}, table.name
        unique = {tuple(u["column_names"]) for u in found.get_unique_constraints(table.name)}
        assert unique == {tuple(c.name for c in u.columns) for u in table.constraints
                          if isinstance(u, UniqueConstraint)}, table.name
    engine.dispose()


def test_a_new_database_holds_exactly_the_tables_schema_py_declares(ledger_at):
    Ledger(ledger_at).close()
    assert_matches_schema(ledger_at)


def test_the_registered_names_start_with_the_released_ones_in_order():
    assert [fn.__name__ for fn in MIGRATIONS][:len(RELEASED)] == RELEASED


def test_a_database_made_by_a_four_migration_version_upgrades(tmp_path):
    path = tmp_path / "ledger.db"
    old_database(path, RELEASED[:4])
    led = Ledger(path)
    names = [r["name"] for r in led._query("SELECT name FROM _migrations ORDER BY rowid")]
    assert names == [fn.__name__ for fn in MIGRATIONS]
    assert led.schema_version() == len(MIGRATIONS)
    (old,) = led.rows()
    assert (old["id"], old["question"], old["answer"], old["total_ms"]) == (
        "old1", "old q", "old a", 345.0)
    assert old["router_scores"] == {"retrieval": 0.5} and old["grounding"] is None
    assert led.summary()["count"] == 1
    led.record_training("law", seconds=1.0, cost_usd=0.5)  # m005 ran
    assert led.training_cost("law") == 0.5
    led.close()
    engine = connect(path)
    assert migrate(engine) == []  # nothing runs twice
    engine.dispose()
    assert_matches_schema(path)  # an upgraded database is a new one's equal


def test_text_kept_by_older_versions_with_text_storage_off_is_scrubbed(tmp_path):
    """Before the fix, store_text off still kept the model's text and the verdict's words."""
    path = tmp_path / "ledger.db"
    old_database(path, RELEASED[:4])
    db = sqlite3.connect(path)
    db.executescript("ALTER TABLE answers ADD COLUMN grounding TEXT;"
                     "ALTER TABLE answers ADD COLUMN generated TEXT;")
    db.execute("INSERT INTO _migrations VALUES ('m005_trainings', 'x'), ('m006_grounding', 'x')")
    db.executescript("CREATE TABLE trainings (id INTEGER PRIMARY KEY AUTOINCREMENT, adapter TEXT "
                     "NOT NULL, created_at TEXT NOT NULL, base_model TEXT, seconds REAL, "
                     "cost_usd REAL, examples INTEGER, steps INTEGER, card TEXT);")
    db.execute("INSERT INTO answers (id, created_at, question, answer, generated, grounding, "
               "error) VALUES ('hidden', '2024-06-01T00:00:00.000+00:00', NULL, NULL, "
               "'Fees are 4.80', 'quoted: not in the documents: Fees, 4.80', "
               "'StrataError: fees?')")
    db.execute("UPDATE answers SET generated = 'kept', grounding = 'quoted: x: Kept' "
               "WHERE id = 'old1'")
    db.commit()
    db.close()
    led = Ledger(path)
    rows = {r["id"]: r for r in led.rows()}
    hidden = rows["hidden"]
    assert (hidden["generated"], hidden["grounding"], hidden["error"]) == (
        None, "quoted: not in the documents", "StrataError")
    assert (rows["old1"]["generated"], rows["old1"]["grounding"]) == ("kept", "quoted: x: Kept")
    led.close()


def test_a_name_registered_twice_is_refused(monkeypatch):
    monkeypatch.setattr(migrations, "MIGRATIONS", list(MIGRATIONS))

    def m001_create_answers(db):  # same name as a released migration
        raise NotImplementedError

    with pytest.raises(ValueError, match="registered twice"):
        migration(m001_create_answers)
