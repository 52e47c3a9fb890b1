"""How the store makes a write all-or-nothing as seen by search, even across a crash.

Chroma has no transaction spanning many calls, so every write is a *generation*: its
chunks go in marked ``pending`` (search, listings and the keyword index skip them), and
only when all of them are in does one short commit delete the document's old chunks and
clear the marks. A search waits for that commit (the ``Gate``) instead of seeing a
document with neither version or both. A writer that dies leaves its chunks pending;
the next store to open finishes the write when every chunk of it is in (``parts``), and
deletes it otherwise, so the document ends with exactly one version.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PENDING = "pending"  # "add" or "replace" while a write is under way; absent once committed
GENERATION = "generation"  # the write a chunk belongs to; kept, so a commit can be resumed
PARTS = "parts"  # how many chunks that write has: all present = complete
WRITER = "writer"  # host:pid of the writer, so a live one is never "recovered" under it
MODES = ("add", "replace")
FORGET_OTHER_HOSTS_S = 3600  # a pending write from another host counts as dead after this


def new_generation() -> str:
    """A unique id that sorts by time (the nanosecond clock, then randomness)."""
    return f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}"


def pending_marks(generation: str, parts: int, mode: str) -> dict[str, Any]:
    """The metadata every chunk of a write carries while the write is under way."""
    writer = f"{socket.gethostname()}:{os.getpid()}"
    return {PENDING: mode, GENERATION: generation, PARTS: parts, WRITER: writer}


COMMITTED = {PENDING: None, WRITER: None}  # a metadata update with None deletes the key


def visible(meta: dict[str, Any] | None) -> bool:
    """A chunk search may return: not part of an unfinished write."""
    return not (meta or {}).get(PENDING)


def abandoned(meta: dict[str, Any]) -> bool:
    """Whether the pending write that ``meta`` belongs to has no live writer any more."""
    host, _, pid = str(meta.get(WRITER, "")).rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return int(pid) == os.getpid() or not _alive(int(pid))
    started_ns = int(str(meta.get(GENERATION, "0")).split("-")[0] or "0", 16)
    return time.time_ns() - started_ns > FORGET_OTHER_HOSTS_S * 1_000_000_000


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class Gate:
    """Many readers at once, or one committer alone; a waiting committer goes first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()
