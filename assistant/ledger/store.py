"""The answer ledger: one SQLite row per answer (failures too) and per adapter training.

Like simonw/llm's logs.db: schema changes are numbered migration functions, each
recorded in ``_migrations`` with its name and time, so an old database moves forward
when opened. WAL mode lets readers (``assistant stats``) run beside the app's writers;
``busy_timeout`` plus ``BEGIN IMMEDIATE`` make concurrent writers (several processes)
wait their turn instead of failing, and a lock serialises threads of one process.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import threading
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from assistant.errors import StrataError
from assistant.text import was_quoted

BUSY_TIMEOUT_MS = 10_000  # a writer waits this long for another process's write to finish

# --- migrations ----------------------------------------------------------------
# Append only: never edit a released migration, add a new one.


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


def m002_routing(db: sqlite3.Connection) -> None:
    """Router decisions: the requested vs chosen mode, the adapter, the reason and scores."""
    db.execute("ALTER TABLE answers RENAME COLUMN mode TO chosen_mode")
    for column in ("session_id", "requested_mode", "adapter", "reason", "router_scores"):
        db.execute(f"ALTER TABLE answers ADD COLUMN {column} TEXT")
    db.execute("UPDATE answers SET requested_mode = chosen_mode")  # old rows: no router yet


def m003_timings(db: sqlite3.Connection) -> None:
    """Per-stage timings, retrieval hits and the quantisation, to explain the latency."""
    for column in ("quantization", "retrieved"):  # retrieved: JSON list of {id, score}
        db.execute(f"ALTER TABLE answers ADD COLUMN {column} TEXT")
    for column in ("router_ms", "retrieval_ms", "ttft_ms", "tokens_per_s"):
        db.execute(f"ALTER TABLE answers ADD COLUMN {column} REAL")


def m004_costs(db: sqlite3.Connection) -> None:
    """Estimated costs (see costs.py) and the hardware preset they were priced at."""
    for column in ("cost_usd", "token_cost_usd", "compute_cost_usd"):
        db.execute(f"ALTER TABLE answers ADD COLUMN {column} REAL")
    db.execute("ALTER TABLE answers ADD COLUMN hardware TEXT")
    db.execute("CREATE INDEX answers_adapter ON answers(adapter)")


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


def m006_grounding(db: sqlite3.Connection) -> None:
    """Prompt mode's answer check (grounding.py): its verdict, and the model's own text
    when the answer shown was replaced by quotes from the documents."""
    for column in ("grounding", "generated"):
        db.execute(f"ALTER TABLE answers ADD COLUMN {column} TEXT")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    m001_create_answers,
    m002_routing,
    m003_timings,
    m004_costs,
    m005_trainings,
    m006_grounding,
]


def migrate(db: sqlite3.Connection, upto: int | None = None) -> list[str]:
    """Apply the missing migrations (the first ``upto`` only, for tests); returns their names."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    applied = []
    for fn in MIGRATIONS[:upto]:
        with _transaction(db):
            done = db.execute("SELECT 1 FROM _migrations WHERE name = ?", (fn.__name__,))
            if done.fetchone():
                continue  # re-checked inside the write lock: another process may have won
            fn(db)
            db.execute("INSERT INTO _migrations VALUES (?, ?)", (fn.__name__, utc_now()))
            applied.append(fn.__name__)
    return applied


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, with a busy wait."""
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; a crash loses no committed row
    return db


class _transaction:
    """``BEGIN IMMEDIATE`` takes the write lock up front, so busy_timeout applies to it."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


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
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str = field(default_factory=lambda: utc_now())

    def set_costs(self, breakdown: Any, hardware: str | None = None) -> AnswerRecord:
        """Copy a ``costs.CostBreakdown`` into the three cost fields; returns self."""
        self.token_cost_usd = breakdown.token_usd
        self.compute_cost_usd = breakdown.compute_usd
        self.cost_usd = breakdown.total_usd
        self.hardware = hardware or self.hardware
        return self


ANSWER_COLUMNS = [f.name for f in fields(AnswerRecord)]


def utc_now() -> str:
    return to_iso(datetime.now(timezone.utc))


def to_iso(when: datetime | str) -> str:
    """One fixed UTC format, so timestamps compare correctly as text in SQL."""
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)  # naive means UTC here
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds")


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> str:
    """``1h``, ``30m``, ``7d``, ``2w`` (ago) or an ISO date/time -> the canonical UTC text."""
    match = _RELATIVE.match(text)
    if match:
        delta = timedelta(**{_UNITS[match[2].lower()]: float(match[1])})
        return to_iso((now or datetime.now(timezone.utc)) - delta)
    try:
        return to_iso(text.strip())
    except ValueError:
        raise StrataError(
            f"--since {text!r}: use a relative age (30m, 1h, 7d, 2w) or an ISO date/time"
        ) from None


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregates of some rows. Latency and token figures use successful answers only
    (a failure's timing would skew them); counts and costs include failures."""
    ok = [r for r in rows if not r["error"]]

    def col(name: str) -> list[float]:
        return [r[name] for r in ok if r[name] is not None]

    return {
        "count": len(rows),
        "errors": len(rows) - len(ok),
        "p50_total_ms": percentile(col("total_ms"), 50),
        "p95_total_ms": percentile(col("total_ms"), 95),
        "p50_ttft_ms": percentile(col("ttft_ms"), 50),
        "p95_ttft_ms": percentile(col("ttft_ms"), 95),
        "mean_prompt_tokens": _mean(col("prompt_tokens")),
        "mean_completion_tokens": _mean(col("completion_tokens")),
        "mean_tokens_per_s": _mean(col("tokens_per_s")),
        "total_cost_usd": sum(r["cost_usd"] or 0.0 for r in rows),
        # the answer check (prompt/layered): share of checked answers shown as quotes instead
        "quoted_share": _mean([float(was_quoted(r.get("grounding")))
                               for r in ok if r.get("grounding") not in (None, "unchecked")]),
    }


GROUP_COLUMNS = {"mode": "chosen_mode", "adapter": "adapter", "base_model": "base_model"}
NO_GROUP = "(none)"


class Ledger:
    """The ledger at ``path``; safe to share between threads, and between processes."""

    def __init__(self, path: Path | str, store_text: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.store_text = store_text
        self._lock = threading.Lock()
        self._db = connect(self.path)
        migrate(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def schema_version(self) -> int:
        """How many migrations have been applied."""
        return self._query("SELECT count(*) AS n FROM _migrations")[0]["n"]

    # --- writing -------------------------------------------------------------
    def record(self, rec: AnswerRecord) -> str:
        """Store one answer (or failure) and return its id."""
        row = asdict(rec)
        if not self.store_text:
            row["question"] = row["answer"] = None
        row["created_at"] = to_iso(row["created_at"])
        for name in JSON_COLUMNS:
            row[name] = json.dumps(row[name])
        sql = (
            f"INSERT INTO answers ({', '.join(ANSWER_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(ANSWER_COLUMNS))})"
        )
        with self._lock, _transaction(self._db) as db:
            db.execute(sql, [row[c] for c in ANSWER_COLUMNS])
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
    ) -> int:
        """Store one adapter training run and return its id."""
        values = (adapter, created_at or utc_now(), base_model, seconds, cost_usd, examples,
                  steps, json.dumps(card or {}, default=str))
        with self._lock, _transaction(self._db) as db:
            cur = db.execute(
                "INSERT INTO trainings (adapter, created_at, base_model, seconds, cost_usd, "
                "examples, steps, card) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            return int(cur.lastrowid)

    # --- reading -------------------------------------------------------------
    def _query(self, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, params).fetchall()]

    def _answers(self, where: str, params: list, order: str) -> list[dict[str, Any]]:
        rows = self._query(
            f"SELECT {', '.join(ANSWER_COLUMNS)} FROM answers {where} ORDER BY {order}", params
        )
        for row in rows:
            for name in JSON_COLUMNS:
                row[name] = json.loads(row[name]) if row[name] else None
        return rows

    @staticmethod
    def _since(since: datetime | str | None) -> tuple[str, list]:
        return ("WHERE created_at >= ?", [to_iso(since)]) if since else ("", [])

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` answers, newest first."""
        return self._answers("", [], f"created_at DESC, rowid DESC LIMIT {int(limit)}")

    def rows(self, since: datetime | str | None = None) -> list[dict[str, Any]]:
        """Every answer (from ``since`` on), oldest first; JSON columns decoded."""
        where, params = self._since(since)
        return self._answers(where, params, "created_at, rowid")

    def trainings(self, adapter: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE adapter = ?", [adapter]) if adapter else ("", [])
        rows = self._query(f"SELECT * FROM trainings {where} ORDER BY id", params)
        for row in rows:
            row["card"] = json.loads(row["card"]) if row["card"] else {}
        return rows

    def training_cost(self, adapter: str) -> float:
        """Total USD spent training ``adapter`` (every run under that name, retrains too)."""
        rows = self._query(
            "SELECT coalesce(sum(cost_usd), 0) AS c FROM trainings WHERE adapter = ?", (adapter,)
        )
        return float(rows[0]["c"])

    def amortised_training_cost(self, adapter: str) -> float | None:
        """Training cost per successful answer that used ``adapter``; None before any."""
        rows = self._query(
            "SELECT count(*) AS n FROM answers WHERE adapter = ? AND error IS NULL", (adapter,)
        )
        n = rows[0]["n"]
        return self.training_cost(adapter) / n if n else None

    # --- aggregates ------------------------------------------------------------
    def summary(self, since: datetime | str | None = None) -> dict[str, Any]:
        """Aggregates over every answer (from ``since`` on)."""
        return summarise(self.rows(since))

    def stats(self, by: str = "mode", since: datetime | str | None = None) -> list[dict]:
        """Aggregates per mode or adapter (see ``summarise``), largest group first."""
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
        with Path(path).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=ANSWER_COLUMNS)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_value(v) for k, v in row.items()})
        return len(rows)


def _csv_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (dict, list)) else value
