"""The ledger's schema, as migration functions registered where they are defined.

Like simonw/llm's logs.db: each ``@migration`` function runs once per database and is
recorded in ``_migrations`` under its function name, so an old database moves forward when
opened. The names are what old databases hold: never rename a released migration or change
what it makes; add a new one at the end of this file (registration order is the order they
run in), and the same change to ``schema.py``.

One set of migrations for SQLite and PostgreSQL: tables and indexes are SQLAlchemy Core
constructs, compiled for the database at hand; the only statements written as text are
``ALTER TABLE ... ADD COLUMN`` and ``RENAME COLUMN`` (Core has no construct for them), whose
column definitions are compiled the same way. A migration runs inside one write
transaction (``db.transaction``), so two processes opening a new database at once apply it
once, and a failed one leaves nothing half done (DDL is transactional on both).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Column,
    Connection,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    column,
    insert,
    select,
    table,
    text,
    update,
)
from sqlalchemy.schema import CreateColumn, SchemaItem

from assistant.ledger.db import transaction, utc_now
from assistant.ledger.redact import error_kind, verdict_kind
from assistant.ledger.schema import migrations_table

Migration = Callable[[Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` to run after every migration defined above it."""
    if any(m.__name__ == fn.__name__ for m in MIGRATIONS):
        raise ValueError(f"migration {fn.__name__} is registered twice")
    MIGRATIONS.append(fn)
    return fn


def applied(engine: Engine) -> list[str]:
    """The names of the migrations applied to the database, in the order they ran."""
    with engine.connect() as db:
        if not engine.dialect.has_table(db, migrations_table.name):
            return []
        done = db.execute(select(migrations_table.c.name).order_by(
            migrations_table.c.applied_at, migrations_table.c.name))
        return list(done.scalars())


def migrate(engine: Engine, upto: int | None = None) -> list[str]:
    """Apply the missing migrations (the first ``upto`` only, for tests); returns their names."""
    with transaction(engine) as db:
        migrations_table.create(db, checkfirst=True)
    done = set(applied(engine))
    ran = []
    for fn in MIGRATIONS[:upto]:
        if fn.__name__ in done:
            continue
        with transaction(engine) as db:
            again = select(migrations_table.c.name).where(migrations_table.c.name == fn.__name__)
            if db.execute(again).first():
                continue  # re-checked inside the write lock: another process may have won
            fn(db)
            db.execute(insert(migrations_table).values(name=fn.__name__, applied_at=utc_now()))
            ran.append(fn.__name__)
    return ran


# --- how the migrations below write their changes -------------------------------------------
Columns = Column[str] | Column[int] | Column[float]


def _create(db: Connection, name: str, *items: SchemaItem,
            sqlite_autoincrement: bool = False) -> None:
    Table(name, MetaData(), *items, sqlite_autoincrement=sqlite_autoincrement).create(db)


def _add_columns(db: Connection, table_name: str, *columns: Columns) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for each column, its definition compiled for ``db``."""
    Table(table_name, MetaData(), *columns)  # gives each column its table, to compile it
    quote = db.dialect.identifier_preparer.quote
    for col in columns:
        spec = CreateColumn(col).compile(dialect=db.dialect)
        db.exec_driver_sql(f"ALTER TABLE {quote(table_name)} ADD COLUMN {spec}")


def _index(db: Connection, name: str, table_name: str, *columns: str,
           unique: bool = False) -> None:
    """``CREATE INDEX`` on existing columns (their types do not matter to an index)."""
    indexed = Table(table_name, MetaData(), *(Column(c, Text) for c in columns))
    Index(name, *(indexed.c[c] for c in columns), unique=unique).create(db)


def _texts(*names: str) -> list[Column[str]]:
    return [Column(n, Text) for n in names]


def _reals(*names: str) -> list[Column[float]]:
    return [Column(n, Double) for n in names]


# --- the migrations ---------------------------------------------------------------------------
@migration
def m001_create_answers(db: Connection) -> None:
    """The first, small schema: question, answer, one mode, token counts, one latency."""
    _create(db, "answers", Column("id", Text, primary_key=True),
            Column("created_at", Text, nullable=False),
            *_texts("question", "answer", "mode", "base_model"),
            Column("prompt_tokens", Integer), Column("completion_tokens", Integer),
            *_reals("total_ms"), *_texts("error"))
    _index(db, "answers_created_at", "answers", "created_at")


@migration
def m002_routing(db: Connection) -> None:
    """Router decisions: the requested vs chosen mode, the adapter, the reason and scores."""
    db.exec_driver_sql("ALTER TABLE answers RENAME COLUMN mode TO chosen_mode")
    _add_columns(db, "answers",
                 *_texts("session_id", "requested_mode", "adapter", "reason", "router_scores"))
    answers = table("answers", column("requested_mode"), column("chosen_mode"))
    db.execute(update(answers).values(requested_mode=answers.c.chosen_mode))  # no router yet


@migration
def m003_timings(db: Connection) -> None:
    """Per-stage timings, retrieval hits and the quantisation, to explain the latency."""
    _add_columns(db, "answers", *_texts("quantization", "retrieved"),  # retrieved: JSON
                 *_reals("router_ms", "retrieval_ms", "ttft_ms", "tokens_per_s"))


@migration
def m004_costs(db: Connection) -> None:
    """Estimated costs (see costs.py) and the hardware preset they were priced at."""
    _add_columns(db, "answers", *_reals("cost_usd", "token_cost_usd", "compute_cost_usd"),
                 *_texts("hardware"))
    _index(db, "answers_adapter", "answers", "adapter")


@migration
def m005_trainings(db: Connection) -> None:
    """Adapter trainings, so an adapter's cost can be amortised over its answers."""
    _create(db, "trainings", Column("id", Integer, primary_key=True, autoincrement=True),
            Column("adapter", Text, nullable=False), Column("created_at", Text, nullable=False),
            *_texts("base_model"), *_reals("seconds", "cost_usd"),
            Column("examples", Integer), Column("steps", Integer), *_texts("card"),
            sqlite_autoincrement=True)
    _index(db, "trainings_adapter", "trainings", "adapter")


@migration
def m006_grounding(db: Connection) -> None:
    """Prompt mode's answer check (grounding.py): its verdict, and the model's own text
    when the answer shown was replaced by quotes from the documents."""
    _add_columns(db, "answers", *_texts("grounding", "generated"))


@migration
def m007_scrub_textless_rows(db: Connection) -> None:
    """Rows recorded with text storage off (their question is NULL) lose the text earlier
    versions still kept: the model's own answer, the verdict's words, the error message."""
    answers = table("answers", column("id"), column("question"), column("answer"),
                    column("generated"), column("grounding"), column("error"))
    rows = db.execute(select(answers.c.id, answers.c.grounding, answers.c.error)
                      .where(answers.c.question.is_(None))).all()
    for row_id, grounding, error in rows:
        db.execute(update(answers).where(answers.c.id == row_id).values(
            answer=None, generated=None, grounding=verdict_kind(grounding),
            error=error_kind(error)))


@migration
def m008_backend_and_profile(db: Connection) -> None:
    """Which generation backend wrote the answer (local or openai), the answer settings
    profile it used, and how its context sentences were ranked (likelihood or embedding)."""
    _add_columns(db, "answers", *_texts("backend", "profile", "ranking"))


@migration
def m009_follow_ups(db: Connection) -> None:
    """A follow-up's standalone query (what it was searched and routed with) and how many
    earlier conversation messages the model read; older rows read none."""
    _add_columns(db, "answers", Column("standalone_query", Text),
                 Column("history_turns", Integer, server_default=text("0")))


@migration
def m010_conversations(db: Connection) -> None:
    """Saved conversations, each owned by one visitor (login or browser session), and their
    messages in order; an assistant message names its answer's ledger row. ``seq`` orders
    the list by last activity even when two changes share a millisecond."""
    _create(db, "conversations", Column("id", Text, primary_key=True),
            Column("owner", Text, nullable=False), Column("title", Text),
            Column("created_at", Text, nullable=False), Column("updated_at", Text, nullable=False),
            Column("seq", Integer, nullable=False))
    _index(db, "conversations_owner", "conversations", "owner", "seq")
    _create(db, "messages", Column("conversation_id", Text, primary_key=True),
            Column("position", Integer, primary_key=True), Column("role", Text, nullable=False),
            Column("content", Text), Column("answer_id", Text),
            Column("created_at", Text, nullable=False))


@migration
def m011_votes(db: Connection) -> None:
    """Human judgement: like/dislike on one answer (one per voter and answer), and blind
    arena battles between two answers to the same question."""
    _create(db, "feedback", Column("id", Text, primary_key=True),
            *(Column(n, Text, nullable=False) for n in ("answer_id", "owner", "value")),
            Column("comment", Text), Column("created_at", Text, nullable=False),
            UniqueConstraint("answer_id", "owner"))
    _create(db, "battles", Column("id", Text, primary_key=True),
            *(Column(n, Text, nullable=False) for n in (
                "owner", "a_answer_id", "b_answer_id", "a_strategy", "b_strategy", "winner",
                "created_at")),
            UniqueConstraint("owner", "a_answer_id", "b_answer_id"))


@migration
def m012_insertion_order(db: Connection) -> None:
    """``seq``: the order rows were written in, for answers, feedback and battles (rows that
    share a millisecond kept SQLite's rowid order; PostgreSQL has no rowid). Rows already
    there are SQLite's (no PostgreSQL ledger predates this migration): they take their rowid."""
    for name in ("answers", "feedback", "battles"):
        _add_columns(db, name, Column("seq", Integer))
        if db.dialect.name == "sqlite":
            db.exec_driver_sql(f"UPDATE {name} SET seq = rowid")
        _index(db, f"{name}_seq", name, "seq", unique=True)


@migration
def m013_training_state(db: Connection) -> None:
    """How a training run ended: ``done`` (every run recorded before), or ``interrupted``
    when the app stopped during it (its time is spent, no adapter was written)."""
    _add_columns(db, "trainings", Column("state", Text, server_default=text("'done'")))
