"""The answer ledger: one SQLite row per answer (failures too) and per adapter training.

Like simonw/llm's logs.db: the schema is a series of ``@migration`` functions
(``migrations.py``) recorded in ``_migrations``, so an old database moves forward when
opened; the connection (``db.py``) lets readers run beside writers and several processes
write in turn, and a lock serialises threads of one process. The figures over the rows
come from the one metrics table (``metrics.py``); with ``store_text`` off no word of a
question or answer is written (``redact.py``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from assistant.errors import StrataError
from assistant.ledger.db import connect, to_iso, transaction, utc_now
from assistant.ledger.metrics import summarise
from assistant.ledger.migrations import migrate
from assistant.ledger.redact import without_text

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

    def set_costs(self, breakdown: Any, hardware: str | None = None) -> AnswerRecord:
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
        row = asdict(rec) if self.store_text else without_text(asdict(rec))
        row["created_at"] = to_iso(row["created_at"])
        for name in JSON_COLUMNS:
            row[name] = json.dumps(row[name])
        sql = (
            f"INSERT INTO answers ({', '.join(ANSWER_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(ANSWER_COLUMNS))})"
        )
        with self._lock, transaction(self._db) as db:
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
        with self._lock, transaction(self._db) as db:
            cur = db.execute(
                "INSERT INTO trainings (adapter, created_at, base_model, seconds, cost_usd, "
                "examples, steps, card) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            return int(cur.lastrowid or 0)  # set after every INSERT

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """The lock and one write transaction: how the ledger's other tables (conversations,
        votes) write through this same connection."""
        with self._lock, transaction(self._db) as db:
            yield db

    # --- reading -------------------------------------------------------------
    def _query(self, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, params).fetchall()]

    def query(self, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
        """Rows of a read-only statement, as dicts (for the ledger's other tables)."""
        return self._query(sql, params)

    def answer(self, answer_id: str) -> dict[str, Any] | None:
        """One answer's row (JSON columns decoded), or None."""
        rows = self._answers("WHERE id = ?", [answer_id], "rowid")
        return rows[0] if rows else None

    def search(self, text: str, limit: int = 20) -> list[dict[str, Any]]:
        """Answers whose question, answer or standalone query contains ``text`` (any case),
        newest first. Rows recorded with text storage off hold no text, so never match."""
        if not text.strip():
            raise StrataError("nothing to search for")
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", text.strip()) + "%"
        where = " OR ".join(f"{c} LIKE ? ESCAPE '\\'"
                            for c in ("question", "answer", "standalone_query"))
        return self._answers(f"WHERE {where}", [pattern] * 3,
                             f"created_at DESC, rowid DESC LIMIT {int(limit)}")

    def _answers(self, where: str, params: list, order: str) -> list[dict[str, Any]]:
        rows = self._query(
            f"SELECT {', '.join(ANSWER_COLUMNS)} FROM answers {where} ORDER BY {order}", params
        )
        for row in rows:
            for name in JSON_COLUMNS:
                row[name] = json.loads(row[name]) if row[name] else None
        return rows

    @staticmethod
    def _where(since: datetime | str | None = None,
               sessions: tuple[str, ...] | None = None) -> tuple[str, list]:
        """The WHERE clause for answers from ``since`` on, of ``sessions`` only (None: all)."""
        terms, params = [], []
        if since:
            terms.append("created_at >= ?")
            params.append(to_iso(since))
        if sessions is not None:
            terms.append(f"session_id IN ({', '.join('?' * len(sessions)) or 'NULL'})")
            params.extend(sessions)
        return ("WHERE " + " AND ".join(terms) if terms else ""), params

    def recent(self, limit: int = 20, sessions: tuple[str, ...] | None = None
               ) -> list[dict[str, Any]]:
        """The newest ``limit`` answers (of ``sessions`` only, when given), newest first."""
        where, params = self._where(sessions=sessions)
        return self._answers(where, params, f"created_at DESC, rowid DESC LIMIT {int(limit)}")

    def rows(self, since: datetime | str | None = None,
             sessions: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """Every answer (from ``since`` on, of ``sessions`` only when given), oldest first;
        JSON columns decoded."""
        where, params = self._where(since, sessions)
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
