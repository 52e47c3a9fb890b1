"""docs/scaling.md's by-hand PostgreSQL, run as written: its `initdb`, `pg_ctl start` and
`createdb` commands (the documented folder, port and Unix-socket folder mapped to a
temporary folder and a free port), then the ledger opened on the URL that the block's
`assistant serve` line names: its tables are made, an answer and a conversation written by
one ledger are read by another. The server is always stopped.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.scale.docs_blocks import block_after, commands, environment
from tests.scale.postgres import BIN, missing_binaries
from tests.servers import free_port

pytestmark = pytest.mark.scale

DOCUMENTED_BIN = "/usr/lib/postgresql/15/bin"
DOCUMENTED_DATA = "/var/lib/postgresql/strata"
DOCUMENTED_PORT = "5432"


def postgres_commands() -> tuple[list[str], str]:
    """The block's PostgreSQL commands, and the database URL of its serve line."""
    listed = commands(block_after("Without Docker, the same by hand").text)
    pg = [c for c in listed if DOCUMENTED_BIN in c]
    url = environment(listed[-1])["ASSISTANT_DATABASE_URL"]
    programs = [next(w for w in shlex.split(c) if w.startswith(DOCUMENTED_BIN)) for c in pg]
    assert [Path(p).name for p in programs] == ["initdb", "pg_ctl", "createdb"], pg
    return pg, url


def as_here(command: str, folder: Path, port: int) -> list[str]:
    """The documented command for this machine: the temp folder, the free port, the
    binaries' folder (the same unless STRATA_POSTGRES_BIN says otherwise), and no
    `runuser` when the tests do not run as root (initdb then runs as this user)."""
    mapped = (command.replace(DOCUMENTED_DATA, str(folder / "strata"))
              .replace(DOCUMENTED_BIN, str(BIN)).replace(DOCUMENTED_PORT, str(port)))
    words = shlex.split(mapped)
    if os.geteuid() != 0 and words[:4] == ["runuser", "-u", "postgres", "--"]:
        words = words[4:]
    return words


def test_the_documented_postgresql_commands_give_the_ledger_its_database():
    from assistant.ledger.conversations import Conversations
    from assistant.ledger.store import AnswerRecord, Ledger

    problem = missing_binaries()
    if problem:
        pytest.fail(problem)
    documented, url = postgres_commands()
    folder = Path(tempfile.mkdtemp(prefix="strata-docs-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")  # where the documented folder's parent is
    port = free_port()
    try:
        for command in documented:
            done = subprocess.run(as_here(command, folder, port), capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode == 0, (command, done.stdout, done.stderr)
        here = url.replace(DOCUMENTED_PORT, str(port))
        first = Ledger(here)
        answer_id = first.record(AnswerRecord(question="How much is a fishing permit?",
                                              answer="Twelve pounds.", chosen_mode="prompt"))
        chat = Conversations(first).create("alice", "Permits")
        first.close()
        second = Ledger(here)  # another process would open it the same way
        assert [r["id"] for r in second.rows()] == [answer_id]
        assert [c.id for c in Conversations(second).list("alice")] == [chat]
        assert second.dialect == "postgresql"
        second.close()
    finally:
        data = folder / "strata"
        if (data / "postmaster.pid").exists():
            subprocess.run(as_here(f"runuser -u postgres -- {DOCUMENTED_BIN}/pg_ctl -D "
                                   f"{DOCUMENTED_DATA} -m fast -w stop", folder, port),
                           capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
