"""One answer's decoding rules, shared by every loop that picks tokens itself (the local
batcher, models/batching.py, and the llama.cpp backend): the request, when an answer
ends (end-of-sequence, length, a closed stream), how its text is streamed, and what the
finished Generation reports. Written once so the engines cannot drift apart in what a
reader sees; each engine keeps only how it computes the next token's logits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from assistant.models.sampling import SamplingParams, rng_for
from assistant.models.stream import Generation, Timings, TokenStream, Usage

REPLACEMENT = "\ufffd"  # what a tokenizer decodes half of a multi-byte character to


class Detokenizer(Protocol):
    """What decoding needs of a tokenizer (transformers' tokenizers have it): ids to text."""

    def decode(self, token_ids: list[int], skip_special_tokens: bool = ...) -> str: ...


@dataclass
class Request:
    """A tokenized prompt waiting for an engine, and the stream its answer goes to."""

    prompt_ids: list[int]
    params: SamplingParams
    adapter: str | None
    out: TokenStream = field(default_factory=TokenStream)
    queued: float = field(default_factory=time.perf_counter)


class Decoding:
    """One request being answered: the tokens picked so far, the text already streamed,
    and why it ended. An engine calls ``stopped`` before picking a token, ``accept`` with
    the token it picked, ``emit`` after each token, and ``end`` once."""

    def __init__(self, request: Request, tokenizer: Detokenizer, eos_ids: set[int]) -> None:
        self.request, self.tokenizer, self.eos_ids = request, tokenizer, eos_ids
        self.rng = rng_for(request.params.seed)
        self.started = time.perf_counter()
        self.answer: list[int] = []
        self.shown = ""  # text already streamed
        self.first = 0.0  # when the first answer token was picked (perf_counter)
        self.finish: str | None = None  # "stop", "length" or "cancelled" once it ended

    def stopped(self) -> bool:
        """Whether the answer has ended; a closed stream or a full answer ends it here,
        before another token is picked."""
        if self.finish is None:
            if self.request.out.cancelled.is_set():
                self.finish = "cancelled"
            elif len(self.answer) >= self.request.params.max_new_tokens:
                self.finish = "length"
        return self.finish is not None

    def accept(self, token: int) -> None:
        """The picked token: end-of-sequence ends the answer (unless the request ignores
        it), else the token joins the answer, and a full answer ends."""
        params = self.request.params
        if token in self.eos_ids and not params.ignore_eos:
            self.finish = "stop"
            return
        self.answer.append(token)
        self.first = self.first or time.perf_counter()
        if len(self.answer) >= params.max_new_tokens:
            self.finish = "length"

    def emit(self) -> None:
        """Stream the new text: one piece per token (maybe empty), held back while it ends
        inside a multi-byte character, and all that is left once the answer ended."""
        text = self.text()
        flush = self.finish is not None and text != self.shown and text.startswith(self.shown)
        if flush or not text.endswith(REPLACEMENT):
            self.request.out.put(text[len(self.shown):])
            self.shown = text

    def text(self) -> str:
        return self.tokenizer.decode(self.answer, skip_special_tokens=True)

    def end(self, **extra: float) -> None:
        """Give the reader the finished Generation and end its stream (once; a stream that
        already has its result is left alone)."""
        request = self.request
        if request.out.result is not None:
            return
        request.out.result = Generation(
            text=self.text(), usage=Usage(len(request.prompt_ids), len(self.answer)),
            timings=timings(self.started, self.first or None, time.perf_counter(),
                             len(self.answer)),
            finish_reason=self.finish or "length", adapter=request.adapter,
            extra={"queued_ms": round((self.started - request.queued) * 1000, 2), **extra})
        request.out.end()


def timings(started: float, first: float | None, ended: float, completion_tokens: int
             ) -> Timings:
    """Timings from three clock readings: time to the first token (0 when none came),
    total, and decode speed after the first token (the prefill is not decoding)."""
    ttft = (first - started) if first else 0.0
    decode_s = ended - (first or ended)
    speed = (completion_tokens - 1) / decode_s if completion_tokens > 1 and decode_s > 0 else 0.0
    return Timings(ttft_ms=round(ttft * 1000, 2), total_ms=round((ended - started) * 1000, 2),
                   tokens_per_s=round(speed, 2))


def running_worker(worker: threading.Thread | None, loop: Callable[[], None],
                   name: str) -> threading.Thread:
    """``worker`` while it runs, else a new daemon thread running ``loop`` (a worker that
    died is replaced on the next request). Callers hold their own start lock."""
    if worker is not None and worker.is_alive():
        return worker
    worker = threading.Thread(target=loop, name=name, daemon=True)
    worker.start()
    return worker
