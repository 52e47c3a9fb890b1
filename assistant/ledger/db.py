"""The ledger's SQLite connection: WAL, a busy wait and explicit write transactions.

WAL mode lets readers (``assistant stats``) run beside the app's writers; ``busy_timeout``
plus ``BEGIN IMMEDIATE`` make concurrent writers (several processes) wait their turn
instead of failing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000  # a writer waits this long for another process's write to finish


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, with a busy wait."""
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; a crash loses no committed row
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` takes the write lock up front, so busy_timeout applies to it."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def utc_now() -> str:
    return to_iso(datetime.now(UTC))


def to_iso(when: datetime | str) -> str:
    """One fixed UTC format, so timestamps compare correctly as text in SQL."""
    if isinstance(when, str):
        when = datetime.fromisoformat(when)  # "Z" too, since Python 3.11
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # naive means UTC here
    return when.astimezone(UTC).isoformat(timespec="milliseconds")
