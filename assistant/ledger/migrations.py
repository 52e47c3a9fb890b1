"""The ledger's schema, as migration functions registered where they are defined.

Like simonw/llm's logs.db: each ``@migration`` function runs once per database and is
recorded in ``_migrations`` under its function name, so an old database moves forward when
opened. The names are what old databases hold: never rename or edit a released migration;
add a new one at the end of this file (registration order is the order they run in).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from assistant.ledger.db import transaction, utc_now
from assistant.ledger.redact import error_kind, verdict_kind

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` to run after every migration defined above it."""
    if any(m.__name__ == fn.__name__ for m in MIGRATIONS):
        raise ValueError(f"migration {fn.__name__} is registered twice")
    MIGRATIONS.append(fn)
    return fn


def migrate(db: sqlite3.Connection, upto: int | None = None) -> list[str]:
    """Apply the missing migrations (the first ``upto`` only, for tests); returns their names."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    applied = []
    for fn in MIGRATIONS[:upto]:
        with transaction(db):
            done = db.execute("SELECT 1 FROM _migrations WHERE name = ?", (fn.__name__,))
            if done.fetchone():
                continue  # re-checked inside the write lock: another process may have won
            fn(db)
            db.execute("INSERT INTO _migrations VALUES (?, ?)", (fn.__name__, utc_now()))
            applied.append(fn.__name__)
    return applied


@migration
def m001_create_answers(db: sqlite3.Connection) -> None:
    """The first, small schema: question, answer, one mode, token counts, one latency."""
    db.execute(
        """CREATE TABLE answers (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            question TEXT,
            answer TEXT,
            mode TEXT,
            base_model TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            total_ms REAL,
            error TEXT
        )"""
    )
    db.execute("CREATE INDEX answers_created_at ON answers(created_at)")


@migration
def m002_routing(db: sqlite3.Connection) -> None:
    """Router decisions: the requested vs chosen mode, the adapter, the reason and scores."""
    db.execute("ALTER TABLE answers RENAME COLUMN mode TO chosen_mode")
    for column in ("session_id", "requested_mode", "adapter", "reason", "router_scores"):
        db.execute(f"ALTER TABLE answers ADD COLUMN {column} TEXT")
    db.execute("UPDATE answers SET requested_mode = chosen_mode")  # old rows: no router yet


@migration
def m003_timings(db: sqlite3.Connection) -> None:
    """Per-stage timings, retrieval hits and the quantisation, to explain the latency."""
    for column in ("quantization", "retrieved"):  # retrieved: JSON list of {id, score}
        db.execute(f"ALTER TABLE answers ADD COLUMN {column} TEXT")
    for column in ("router_ms", "retrieval_ms", "ttft_ms", "tokens_per_s"):
        db.execute(f"ALTER TABLE answers ADD COLUMN {column} REAL")


@migration
def m004_costs(db: sqlite3.Connection) -> None:
    """Estimated costs (see costs.py) and the hardware preset they were priced at."""
    for column in ("cost_usd", "token_cost_usd", "compute_cost_usd"):
        db.execute(f"ALTER TABLE answers ADD COLUMN {column} REAL")
    db.execute("ALTER TABLE answers ADD COLUMN hardware TEXT")
    db.execute("CREATE INDEX answers_adapter ON answers(adapter)")


@migration
def m005_trainings(db: sqlite3.Connection) -> None:
    """Adapter trainings, so an adapter's cost can be amortised over its answers."""
    db.execute(
        """CREATE TABLE trainings (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            adapter TEXT NOT NULL,
            created_at TEXT NOT NULL,
            base_model TEXT,
            seconds REAL,
            cost_usd REAL,
            examples INTEGER,
            steps INTEGER,
            card TEXT
        )"""
    )
    db.execute("CREATE INDEX trainings_adapter ON trainings(adapter)")


@migration
def m006_grounding(db: sqlite3.Connection) -> None:
    """Prompt mode's answer check (grounding.py): its verdict, and the model's own text
    when the answer shown was replaced by quotes from the documents."""
    for column in ("grounding", "generated"):
        db.execute(f"ALTER TABLE answers ADD COLUMN {column} TEXT")


@migration
def m007_scrub_textless_rows(db: sqlite3.Connection) -> None:
    """Rows recorded with text storage off (their question is NULL) lose the text earlier
    versions still kept: the model's own answer, the verdict's words, the error message."""
    rows = db.execute(
        "SELECT id, grounding, error FROM answers WHERE question IS NULL").fetchall()
    for row_id, grounding, error in rows:
        db.execute("UPDATE answers SET answer = NULL, generated = NULL, grounding = ?, "
                   "error = ? WHERE id = ?", (verdict_kind(grounding), error_kind(error), row_id))


@migration
def m008_backend_and_profile(db: sqlite3.Connection) -> None:
    """Which generation backend wrote the answer (local or openai), the answer settings
    profile it used, and how its context sentences were ranked (likelihood or embedding)."""
    for column in ("backend", "profile", "ranking"):
        db.execute(f"ALTER TABLE answers ADD COLUMN {column} TEXT")


@migration
def m009_follow_ups(db: sqlite3.Connection) -> None:
    """A follow-up's standalone query (what it was searched and routed with) and how many
    earlier conversation messages the model read; older rows read none."""
    db.execute("ALTER TABLE answers ADD COLUMN standalone_query TEXT")
    db.execute("ALTER TABLE answers ADD COLUMN history_turns INTEGER DEFAULT 0")


@migration
def m010_conversations(db: sqlite3.Connection) -> None:
    """Saved conversations, each owned by one visitor (login or browser session), and their
    messages in order; an assistant message names its answer's ledger row. ``seq`` orders
    the list by last activity even when two changes share a millisecond."""
    db.execute(
        """CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            title TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            seq INTEGER NOT NULL
        )"""
    )
    db.execute("CREATE INDEX conversations_owner ON conversations(owner, seq)")
    db.execute(
        """CREATE TABLE messages (
            conversation_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            role TEXT NOT NULL,
            content TEXT,
            answer_id TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (conversation_id, position)
        )"""
    )


@migration
def m011_votes(db: sqlite3.Connection) -> None:
    """Human judgement: like/dislike on one answer (one per voter and answer), and blind
    arena battles between two answers to the same question."""
    db.execute(
        """CREATE TABLE feedback (
            id TEXT PRIMARY KEY,
            answer_id TEXT NOT NULL,
            owner TEXT NOT NULL,
            value TEXT NOT NULL,
            comment TEXT,
            created_at TEXT NOT NULL,
            UNIQUE (answer_id, owner)
        )"""
    )
    db.execute(
        """CREATE TABLE battles (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            a_answer_id TEXT NOT NULL,
            b_answer_id TEXT NOT NULL,
            a_strategy TEXT NOT NULL,
            b_strategy TEXT NOT NULL,
            winner TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (owner, a_answer_id, b_answer_id)
        )"""
    )
