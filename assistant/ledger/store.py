"""The answer ledger: one row per answer (failures too) and per adapter training, in SQLite
(the data folder's ledger.db) or in PostgreSQL that several app processes share.

Like simonw/llm's logs.db: the schema is a series of ``@migration`` functions
(``migrations.py``) recorded in ``_migrations``, so an old database moves forward when
opened; the engine (``db.py``) lets readers run beside writers and several processes
write in turn, and a lock serialises threads of one process. Statements are SQLAlchemy
Core over the tables in ``schema.py``, the same for both databases. The figures over the
rows come from the one metrics table (``metrics.py``); with ``store_text`` off no word of a
question or answer is written (``redact.py``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Select,
    and_,
    func,
    insert,
    or_,
    select,
    text,
)

from assistant.errors import StrataError
from assistant.ledger.db import connect, is_file, next_seq, to_iso, transaction, utc_now
from assistant.ledger.metrics import summarise
from assistant.ledger.migrations import migrate
from assistant.ledger.redact import without_text
from assistant.ledger.schema import answers, migrations_table, trainings
from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.ledger.costs import CostBreakdown

# --- records ---------------------------------------------------------------------

JSON_COLUMNS = ("router_scores", "retrieved")


@dataclass
class AnswerRecord:
    """Everything known about one answer; only the question is required."""

    question: str
    answer: str | None = None
    session_id: str | None = None
    requested_mode: str | None = None
    chosen_mode: str | None = None
    adapter: str | None = None
    reason: str | None = None
    router_scores: dict[str, float] = field(default_factory=dict)
    base_model: str | None = None
    quantization: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retrieved: list[dict[str, Any]] = field(default_factory=list)  # [{id, score}]
    router_ms: float | None = None
    retrieval_ms: float | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None
    tokens_per_s: float | None = None
    cost_usd: float | None = None
    token_cost_usd: float | None = None
    compute_cost_usd: float | None = None
    hardware: str | None = None
    error: str | None = None
    grounding: str | None = None  # prompt/layered: "grounded", "declined" or "quoted: <why>"
    generated: str | None = None  # the model's own answer when quotes replaced it
    backend: str | None = None  # "local" or "openai" (assistant/backends)
    profile: str | None = None  # answer settings profile (assistant/models/profiles.py)
    ranking: str | None = None  # context sentences: "likelihood" re-ranked or "embedding"
    standalone_query: str | None = None  # what a follow-up was searched and routed with
    history_turns: int = 0  # earlier conversation messages the model read
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str = field(default_factory=lambda: utc_now())

    def set_costs(self, breakdown: CostBreakdown, hardware: str | None = None) -> AnswerRecord:
        """Copy a ``costs.CostBreakdown`` into the three cost fields; returns self."""
        self.token_cost_usd = breakdown.token_usd
        self.compute_cost_usd = breakdown.compute_usd
        self.cost_usd = breakdown.total_usd
        self.hardware = hardware or self.hardware
        return self


ANSWER_COLUMNS = [f.name for f in fields(AnswerRecord)]


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> str:
    """``1h``, ``30m``, ``7d``, ``2w`` (ago) or an ISO date/time -> the canonical UTC text."""
    match = _RELATIVE.match(text)
    if match:
        delta = timedelta(**{_UNITS[match[2].lower()]: float(match[1])})
        return to_iso((now or datetime.now(UTC)) - delta)
    try:
        return to_iso(text.strip())
    except ValueError:
        raise StrataError(
            f"--since {text!r}: use a relative age (30m, 1h, 7d, 2w) or an ISO date/time"
        ) from None


GROUP_COLUMNS = {"mode": "chosen_mode", "adapter": "adapter", "base_model": "base_model"}
NO_GROUP = "(none)"
DONE, INTERRUPTED = "done", "interrupted"  # how a training run ended (trainings.state)


def _statement(sql: str, params: Sequence[object]) -> tuple[Executable, dict[str, object]]:
    """A text statement with ``?`` placeholders (as sqlite3 takes them), on any database."""
    parts = sql.split("?")
    if len(parts) != len(params) + 1:
        raise ValueError(f"{len(parts) - 1} placeholders for {len(params)} values: {sql!r}")
    names = [f"p{i}" for i in range(len(params))]
    joined = parts[0] + "".join(f":{n}{part}" for n, part in zip(names, parts[1:]))
    return text(joined), dict(zip(names, params))


def location(settings: Settings) -> Path | str:
    """Where the app's ledger is: ``database_url`` (PostgreSQL, shared by replicas) when
    set, else data_dir/ledger.db."""
    return settings.database_url or settings.data_dir / "ledger.db"


class Ledger:
    """The ledger at ``where``: a SQLite file path, or a database URL
    (``postgresql://user:password@host:5432/db``); safe to share between threads, and
    between processes."""

    def __init__(self, where: Path | str, store_text: bool = True) -> None:
        self.path: Path | None = None  # the SQLite file; None on a database server
        if is_file(where):
            self.path = Path(where)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.store_text = store_text
        self._lock = threading.Lock()
        self._closed = False
        self._engine = connect(where)
        try:
            migrate(self._engine)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def location(self) -> str:
        """Where the rows are: the SQLite file, or the database URL without its password."""
        if self.path is not None:
            return str(self.path)
        return self._engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    def close(self) -> None:
        """Close the connections; the ledger refuses work after this."""
        with self._lock:
            self._closed = True
            self._engine.dispose()

    def _check_open(self) -> None:
        if self._closed:
            raise StrataError("the ledger is closed")

    def schema_version(self) -> int:
        """How many migrations have been applied."""
        return int(self.query(select(func.count().label("n")).select_from(migrations_table))
                   [0]["n"])

    # --- writing -------------------------------------------------------------
    def record(self, rec: AnswerRecord) -> str:
        """Store one answer (or failure) and return its id."""
        row = asdict(rec) if self.store_text else without_text(asdict(rec))
        row["created_at"] = to_iso(row["created_at"])
        for name in JSON_COLUMNS:
            row[name] = json.dumps(row[name])
        with self.writing() as db:
            db.execute(insert(answers).values(
                **{c: row[c] for c in ANSWER_COLUMNS}, seq=next_seq(db, answers)))
        return rec.id

    def record_training(
        self,
        adapter: str,
        *,
        base_model: str | None = None,
        seconds: float = 0.0,
        cost_usd: float = 0.0,
        examples: int = 0,
        steps: int = 0,
        card: dict[str, Any] | None = None,
        created_at: str | None = None,
        state: str = DONE,
    ) -> int:
        """Store one adapter training run and return its id; ``state`` says how it ended
        (``done``, or ``interrupted``: the app stopped during it and wrote no adapter)."""
        values = {"adapter": adapter, "created_at": created_at or utc_now(),
                  "base_model": base_model, "seconds": seconds, "cost_usd": cost_usd,
                  "examples": examples, "steps": steps,
                  "card": json.dumps(card or {}, default=str), "state": state}
        with self.writing() as db:
            key = db.execute(insert(trainings).values(**values)).inserted_primary_key
        assert key is not None  # an INSERT of one row always has one
        return int(key[0])

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """The lock and one write transaction: how the ledger's other tables (conversations,
        votes) write through this same database."""
        with self._lock:
            self._check_open()
            with transaction(self._engine) as db:
                yield db

    # --- reading -------------------------------------------------------------
    def query(self, statement: str | Executable, params: Sequence[object] = ()
              ) -> list[dict[str, Any]]:
        """Rows of a read-only statement, as dicts: a SQLAlchemy statement, or SQL text
        with ``?`` placeholders for ``params``."""
        bound: dict[str, object] = {}
        if isinstance(statement, str):
            statement, bound = _statement(statement, params)
        self._check_open()
        with self._engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(statement, bound)]

    _query = query  # the name tests and older code used

    def answer(self, answer_id: str) -> dict[str, Any] | None:
        """One answer's row (JSON columns decoded), or None."""
        rows = self._answers(answers.c.id == answer_id)
        return rows[0] if rows else None

    def search(self, text: str, limit: int = 20) -> list[dict[str, Any]]:
        """Answers whose question, answer or standalone query contains ``text`` (any case),
        newest first. Rows recorded with text storage off hold no text, so never match."""
        if not text.strip():
            raise StrataError("nothing to search for")
        found = or_(*(answers.c[c].icontains(text.strip(), autoescape=True)
                      for c in ("question", "answer", "standalone_query")))
        return self._answers(found, newest_first=True, limit=limit)

    def _answers(self, where: ColumnElement[bool] | None = None, newest_first: bool = False,
                 limit: int | None = None) -> list[dict[str, Any]]:
        statement: Select[Any] = select(*(answers.c[c] for c in ANSWER_COLUMNS))
        if where is not None:
            statement = statement.where(where)
        order = (answers.c.created_at, answers.c.seq)
        statement = statement.order_by(*(c.desc() for c in order) if newest_first else order)
        if limit is not None:
            statement = statement.limit(int(limit))
        rows = self.query(statement)
        for row in rows:
            for name in JSON_COLUMNS:
                row[name] = json.loads(row[name]) if row[name] else None
        return rows

    @staticmethod
    def _where(since: datetime | str | None = None,
               sessions: tuple[str, ...] | None = None) -> ColumnElement[bool] | None:
        """Answers from ``since`` on, of ``sessions`` only (None: all)."""
        terms = []
        if since:
            terms.append(answers.c.created_at >= to_iso(since))
        if sessions is not None:
            terms.append(answers.c.session_id.in_(sessions))
        return and_(*terms) if terms else None

    def recent(self, limit: int = 20, sessions: tuple[str, ...] | None = None
               ) -> list[dict[str, Any]]:
        """The newest ``limit`` answers (of ``sessions`` only, when given), newest first."""
        return self._answers(self._where(sessions=sessions), newest_first=True, limit=limit)

    def rows(self, since: datetime | str | None = None,
             sessions: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """Every answer (from ``since`` on, of ``sessions`` only when given), oldest first;
        JSON columns decoded."""
        return self._answers(self._where(since, sessions))

    def trainings(self, adapter: str | None = None) -> list[dict[str, Any]]:
        """The recorded training runs (of ``adapter`` only, when given), oldest first."""
        statement = select(trainings).order_by(trainings.c.id)
        if adapter:
            statement = statement.where(trainings.c.adapter == adapter)
        rows = self.query(statement)
        for row in rows:
            row["card"] = json.loads(row["card"]) if row["card"] else {}
        return rows

    def training_cost(self, adapter: str) -> float:
        """Total USD spent training ``adapter``: every run under that name, retrains and
        interrupted runs too (their compute was spent)."""
        total = select(func.coalesce(func.sum(trainings.c.cost_usd), 0.0).label("c")).where(
            trainings.c.adapter == adapter)
        return float(self.query(total)[0]["c"])

    def amortised_training_cost(self, adapter: str) -> float | None:
        """Training cost per successful answer that used ``adapter``; None before any."""
        count = select(func.count().label("n")).where(
            answers.c.adapter == adapter, answers.c.error.is_(None))
        n = self.query(count)[0]["n"]
        return self.training_cost(adapter) / n if n else None

    # --- aggregates ------------------------------------------------------------
    def summary(self, since: datetime | str | None = None) -> dict[str, Any]:
        """Aggregates over every answer (from ``since`` on)."""
        return summarise(self.rows(since))

    def stats(self, by: str = "mode", since: datetime | str | None = None) -> list[dict]:
        """Aggregates per mode or adapter (see ``metrics.summarise``), largest group first."""
        if by not in GROUP_COLUMNS:
            raise StrataError(f"cannot group by {by!r}; choose one of {sorted(GROUP_COLUMNS)}")
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows(since):
            groups.setdefault(row[GROUP_COLUMNS[by]] or NO_GROUP, []).append(row)
        result = []
        for name, members in groups.items():
            entry = {"group": name, **summarise(members)}
            if by == "adapter" and name != NO_GROUP:
                entry["training_cost_usd"] = self.training_cost(name)
                entry["training_cost_per_answer_usd"] = self.amortised_training_cost(name)
            result.append(entry)
        return sorted(result, key=lambda e: (-e["count"], e["group"]))

    def to_csv(self, path: Path | str, since: datetime | str | None = None) -> int:
        """Write the answers (from ``since`` on) as CSV with a header; returns the row count."""
        rows = self.rows(since)
        Path(path).write_text(csv_text(rows), encoding="utf-8", newline="")
        return len(rows)


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Answer rows (as ``Ledger.rows`` gives them) as CSV with a header; JSON columns as JSON."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=ANSWER_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    return out.getvalue()


def _csv_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (dict, list)) else value
