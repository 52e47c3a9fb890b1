"""The answers being generated right now, so a stopping server can end them.

A container stop (Docker, Spaces, Kubernetes) sends SIGTERM and kills the process about
10 s later: an answer still generating then would leave no ledger row at all. ``stop()``
refuses new answers and asks each running one to end at its next token; each then records
its row as cancelled (``AnswerCancelled``) and its reader gets the error at once.
"""

from __future__ import annotations

import threading
from typing import Protocol

from assistant.errors import AnswerCancelled

STOPPING = "the server is stopping"


class Cancellable(Protocol):
    def cancel(self) -> None:
        """End at the next token; safe from any thread."""
        ...


class InFlight:
    """A thread-safe set of running answers and the one-way 'stopping' switch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[Cancellable] = set()
        self.stopping = threading.Event()

    def enter(self, answer: Cancellable) -> None:
        """Count ``answer`` as running; refused once the server is stopping."""
        with self._lock:
            if self.stopping.is_set():
                raise AnswerCancelled(STOPPING)
            self._running.add(answer)

    def leave(self, answer: Cancellable) -> None:
        with self._lock:
            self._running.discard(answer)

    def stop(self) -> int:
        """Refuse new answers and cancel the running ones; returns how many ran."""
        with self._lock:
            self.stopping.set()
            running = list(self._running)
        for answer in running:
            answer.cancel()
        return len(running)

    def __len__(self) -> int:
        with self._lock:
            return len(self._running)
