"""What a generation hands back: text pieces as they come (TokenStream), then the finished
Generation with its usage and timings. Every backend produces these."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Timings:
    ttft_ms: float = 0.0  # prompt in -> first answer token out (prefill + one step)
    total_ms: float = 0.0
    tokens_per_s: float = 0.0  # decode speed after the first token


@dataclass
class Generation:
    text: str
    usage: Usage
    timings: Timings
    finish_reason: str  # "stop" (end-of-sequence), "length" or "cancelled"
    adapter: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["usage"]["total_tokens"] = self.usage.total_tokens
        return data


class TokenStream:
    """Iterates over text pieces as they are generated; ``result`` is set at the end."""

    _DONE = object()

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self.cancelled = threading.Event()
        self.result: Generation | None = None
        self._ended = False  # the end was read: iterating again yields nothing, never blocks

    def __iter__(self) -> Iterator[str]:
        while not self._ended:
            item = self._queue.get()
            if item is self._DONE:
                self._ended = True
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop generating (the worker notices before its next token)."""
        self.cancelled.set()

    # For producers in other modules (assistant/backends): a piece, then exactly one end.
    def put(self, piece: str) -> None:
        self._queue.put(piece)

    def end(self, error: BaseException | None = None) -> None:
        """Finish the stream; ``error`` is raised to the reader instead of a normal end."""
        if error is not None:
            self._queue.put(error)
        self._queue.put(self._DONE)

    def wait(self) -> Generation:
        """Consume the rest of the stream and return the finished generation."""
        for _ in self:
            pass
        if self.result is None:  # an end without a result is a producer's bug: say so
            raise RuntimeError("the generation ended without a result")
        return self.result
