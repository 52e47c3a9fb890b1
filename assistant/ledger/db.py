"""The ledger's database: SQLite in the data folder, or PostgreSQL shared by replicas.

One SQLAlchemy engine (Core, no ORM) per ledger; the same statements run on both. Writes
go through ``transaction``, which takes one write lock for the whole database before
anything else: SQLite's ``BEGIN IMMEDIATE`` (with WAL, readers such as ``assistant stats``
run beside the writer, and ``busy_timeout`` makes other processes wait their turn instead
of failing), or on PostgreSQL a transaction-scoped advisory lock, so that two app
processes writing to one database take turns in the same way (the ledger writes a few small
rows per answer: one writer at a time is plenty, and it keeps ``max(seq) + 1`` exact).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, Table, create_engine, event, func, select
from sqlalchemy.engine import URL, make_url

BUSY_TIMEOUT_MS = 10_000  # a writer waits this long for another process's write to finish
WRITE_LOCK_KEY = 0x5354524154414C44  # PostgreSQL advisory lock id of the ledger ("STRATALD")
_WRITE = "ledger_write"  # execution option: this connection's transaction writes


def database_url(where: Path | str) -> URL:
    """A SQLAlchemy URL from a SQLite file path or a database URL; ``postgresql://`` (or
    ``postgres://``) without a driver means psycopg 3, the driver Strata installs."""
    if isinstance(where, Path) or "://" not in where:
        return URL.create("sqlite", database=str(where))
    url = make_url(where)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def is_file(where: Path | str) -> bool:
    """True when ``where`` names a SQLite file rather than a database server."""
    return database_url(where).get_backend_name() == "sqlite"


def connect(where: Path | str) -> Engine:
    """An engine for ``where`` (a SQLite file path or a database URL)."""
    url = database_url(where)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                  "timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # pool_pre_ping: a database restarted under a long-running app costs one retry, not
    # an error on the next answer
    return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)


def _sqlite_connect(dbapi_connection: object, _record: object) -> None:
    # The driver's own transaction handling is off: ``_sqlite_begin`` says how each begins.
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _journal_wal(cursor)
    cursor.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; a crash loses no commit
    cursor.close()


def _journal_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL. Why a retry: switching a new file's journal needs its
    exclusive lock, and SQLite answers "database is locked" at once instead of waiting on
    busy_timeout, so replicas opening one new file together failed now and then (seen in
    tests/unit/test_ledger.py's replicas test on a loaded machine)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_begin(conn: Connection) -> None:
    """Writers take the write lock up front (so busy_timeout applies to it); readers read
    in autocommit, one statement at a time, as before."""
    if conn.get_execution_options().get(_WRITE):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction holding the database's write lock; committed at the end,
    rolled back on any error."""
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(WRITE_LOCK_KEY)))
            yield conn


def next_seq(db: Connection, table: Table) -> int:
    """The next ``seq`` of ``table``: exact inside ``transaction`` (it holds the lock)."""
    return int(db.execute(select(func.coalesce(func.max(table.c.seq), 0) + 1)).scalar_one())


def utc_now() -> str:
    return to_iso(datetime.now(UTC))


def to_iso(when: datetime | str) -> str:
    """One fixed UTC format, so timestamps compare correctly as text in SQL."""
    if isinstance(when, str):
        when = datetime.fromisoformat(when)  # "Z" too, since Python 3.11
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # naive means UTC here
    return when.astimezone(UTC).isoformat(timespec="milliseconds")
