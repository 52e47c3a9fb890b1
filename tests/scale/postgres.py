"""A throwaway PostgreSQL cluster for tests: Debian's server binaries, `initdb` into a
temporary folder as the `postgres` user (the server refuses to run as root), listening on a
free port on 127.0.0.1 only, its socket in that folder; always stopped and removed.

``throwaway_postgres`` is the context manager; tests/conftest.py makes it the session's
``postgres_server`` fixture, and ``PostgresServer.new_database`` gives each test a database
of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port

BIN = Path(os.environ.get("STRATA_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
USER = "strata"  # the cluster's superuser (initdb -U); trust auth, 127.0.0.1 only
START_TIMEOUT_S = 60


@dataclass
class PostgresServer:
    port: int
    folder: Path  # data directory, socket and log
    log: Path

    def url(self, database: str = "postgres") -> str:
        """The URL a user gives ``ASSISTANT_DATABASE_URL``."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "t") -> str:
        """Create an empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_postgres(args: list[str]) -> list[str]:
    """Run as the `postgres` user when this process is root (initdb and postgres refuse
    root); as the current user otherwise."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _run(args: list[str], what: str) -> None:
    done = subprocess.run(_as_postgres(args), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def missing_binaries() -> str | None:
    """Why no cluster can start here, or None."""
    needed = [BIN / name for name in ("initdb", "pg_ctl", "postgres")]
    if all(path.is_file() for path in needed):
        return None
    return (f"PostgreSQL server binaries not found in {BIN} (initdb, pg_ctl, postgres): "
            "install Debian's `postgresql` package (apt-get install postgresql), or set "
            "STRATA_POSTGRES_BIN to the folder that holds them")


@contextmanager
def throwaway_postgres() -> Iterator[PostgresServer]:
    """Start a new cluster; stop it and delete its folder on the way out, whatever
    happened inside."""
    problem = missing_binaries()
    if problem:
        raise RuntimeError(problem)
    folder = Path(tempfile.mkdtemp(prefix="strata-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, log = folder / "data", folder / "server.log"
    port = free_port()
    started = False
    try:
        _run([str(BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", USER, "-E", "UTF8",
              "--locale=C", "--no-sync"], "initdb")
        # -F: no fsync (a throwaway cluster); -k: the socket stays in the temp folder
        options = f"-p {port} -k {folder} -h 127.0.0.1 -F"
        _run([str(BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w",
              "-t", str(START_TIMEOUT_S), "start"], "pg_ctl start")
        started = True
        server = PostgresServer(port, folder, log)
        _wait_accepting(server)
        yield server
    finally:
        if started:
            try:
                _run([str(BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                     "pg_ctl stop")
            except (RuntimeError, subprocess.TimeoutExpired):
                _run([str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                     "pg_ctl stop -m immediate")
        shutil.rmtree(folder, ignore_errors=True)


def _wait_accepting(server: PostgresServer) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with psycopg.connect(server.url(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
