"""The ledger's tables as the migrations leave them, for building statements (SQLAlchemy
Core). ``migrations.py`` creates and changes the real tables; a test migrates a new database
on SQLite and on PostgreSQL and compares what it finds with these, so the two cannot drift.

Times are text in one fixed UTC format (``db.to_iso``), so they compare correctly on both
databases. ``seq`` numbers rows in the order they were written (the write lock makes
``max(seq) + 1`` exact): it orders rows that share a millisecond.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

migrations_table = Table(
    "_migrations", metadata,
    Column("name", Text, primary_key=True),
    Column("applied_at", Text),
)

answers = Table(
    "answers", metadata,
    Column("id", Text, primary_key=True),
    Column("created_at", Text, nullable=False),
    Column("question", Text),
    Column("answer", Text),
    Column("chosen_mode", Text),
    Column("base_model", Text),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("total_ms", Double),
    Column("error", Text),
    Column("session_id", Text),
    Column("requested_mode", Text),
    Column("adapter", Text),
    Column("reason", Text),
    Column("router_scores", Text),  # JSON
    Column("quantization", Text),
    Column("retrieved", Text),  # JSON list of {id, score}
    Column("router_ms", Double),
    Column("retrieval_ms", Double),
    Column("ttft_ms", Double),
    Column("tokens_per_s", Double),
    Column("cost_usd", Double),
    Column("token_cost_usd", Double),
    Column("compute_cost_usd", Double),
    Column("hardware", Text),
    Column("grounding", Text),
    Column("generated", Text),
    Column("backend", Text),
    Column("profile", Text),
    Column("ranking", Text),
    Column("standalone_query", Text),
    Column("history_turns", Integer, server_default=text("0")),
    Column("seq", Integer),
    Index("answers_created_at", "created_at"),
    Index("answers_adapter", "adapter"),
    Index("answers_seq", "seq", unique=True),
)

trainings = Table(
    "trainings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("adapter", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("base_model", Text),
    Column("seconds", Double),
    Column("cost_usd", Double),
    Column("examples", Integer),
    Column("steps", Integer),
    Column("card", Text),  # JSON: the adapter card
    Column("state", Text, server_default=text("'done'")),  # done, or interrupted (the app stopped)
    Index("trainings_adapter", "adapter"),
    sqlite_autoincrement=True,
)

conversations = Table(
    "conversations", metadata,
    Column("id", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("title", Text),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("seq", Integer, nullable=False),
    Index("conversations_owner", "owner", "seq"),
)

messages = Table(
    "messages", metadata,
    Column("conversation_id", Text, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("role", Text, nullable=False),
    Column("content", Text),
    Column("answer_id", Text),
    Column("created_at", Text, nullable=False),
)

feedback = Table(
    "feedback", metadata,
    Column("id", Text, primary_key=True),
    Column("answer_id", Text, nullable=False),
    Column("owner", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("comment", Text),
    Column("created_at", Text, nullable=False),
    Column("seq", Integer),
    UniqueConstraint("answer_id", "owner"),
    Index("feedback_seq", "seq", unique=True),
)

battles = Table(
    "battles", metadata,
    Column("id", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("a_answer_id", Text, nullable=False),
    Column("b_answer_id", Text, nullable=False),
    Column("a_strategy", Text, nullable=False),
    Column("b_strategy", Text, nullable=False),
    Column("winner", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("seq", Integer),
    UniqueConstraint("owner", "a_answer_id", "b_answer_id"),
    Index("battles_seq", "seq", unique=True),
)
