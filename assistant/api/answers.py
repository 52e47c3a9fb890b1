"""One chat completion: the Pipeline's answer stream turned into OpenAI's shapes.

Two things stand between the model's tokens and what the client reads:

- Stop sequences. The generator has none, so the text is cut here at the first stop
  string (a streamed answer holds back the few characters that could begin one). The
  rest of the answer is still generated and recorded, so the ledger row and ``usage``
  count every token the model produced.
- The answer check. In prompt and layered mode the Pipeline may replace the model's text
  by quoted sentences once the answer is complete (assistant/answering/grounding.py), and
  a sent token cannot be taken back. So those answers are streamed as one piece at the
  end, with the text the ledger records, like a content filter that buffers; answers that
  cannot be replaced (base, adapter, or the check turned off) stream token by token.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.answering.answer import Answer
    from assistant.answering.stream import AnswerStream
    from assistant.api.requests import ChatRequest

FINISH = {"length": "length"}  # every other Pipeline finish ("stop", "no_context") is a stop


class Completion:
    """The text pieces of one answer as the client should read them; ``answer`` at the end.
    While an answer is held back ``pieces`` gives an empty piece per token: nothing to send."""

    def __init__(self, stream: AnswerStream, request: ChatRequest) -> None:
        self.stream, self.request = stream, request
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self._pieces: Iterator[str] | None = None
        self._first: str | None = None
        self._raw, self._sent, self._stopped = "", 0, False

    def start(self) -> None:
        """Run up to the first piece, so a refusal (a StrataError) comes before any byte."""
        self._pieces = iter(self.stream)
        self._first = next(self._pieces, None)

    def pieces(self) -> Iterator[str]:
        """The text to send while streaming, in order; after the last one ``answer`` is set."""
        if self._pieces is None:
            self.start()
        live = not self._held_back()
        for piece in self._remaining():
            if not live:
                yield ""  # held back: hand control back per token, so a reader who leaves
                continue  # stops the answer (recorded as cancelled), as in the other modes
            if not self._stopped:
                yield from self._take(piece)
        if live:
            yield from self._emit(len(self._raw))
        else:
            text = self._cut(self.answer.text)
            if text:
                yield text

    def text(self) -> str:
        """The whole answer for a non-streamed response: the ledger's text, cut at a stop."""
        if self._pieces is None:
            self.start()
        for _ in self._remaining():
            pass
        return self._cut(self.answer.text)

    @property
    def answer(self) -> Answer:
        return self.stream.result()  # the stream has been read to its end

    def finish_reason(self) -> str:
        if self._stopped:
            return "stop"
        return FINISH.get(self.answer.finish_reason, "stop")

    def close(self) -> None:
        """Stop reading: an unfinished answer is recorded as cancelled (the Pipeline's rule)."""
        closer = getattr(self._pieces, "close", None)
        if closer is not None:
            closer()

    # --- stop sequences and held-back text -----------------------------------------
    def _remaining(self) -> Iterator[str]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._pieces or ()

    def _held_back(self) -> bool:
        return self.stream.replaceable  # the Pipeline's rule: its answer check may replace it

    def _cut(self, text: str) -> str:
        cut = _first_stop(text, self.request.stop)
        if cut is None:
            return text
        self._stopped = True
        return text[:cut]

    def _take(self, piece: str) -> Iterator[str]:
        """Add a piece; send what can no longer turn out to be the start of a stop string."""
        self._raw = self._cut(self._raw + piece)
        keep = 0 if self._stopped else max((len(s) - 1 for s in self.request.stop), default=0)
        yield from self._emit(len(self._raw) - keep)

    def _emit(self, upto: int) -> Iterator[str]:
        if self._sent == 0:  # the Pipeline strips the answer's leading space; so do we
            self._sent = len(self._raw) - len(self._raw.lstrip())
        if upto > self._sent:
            yield self._raw[self._sent:upto]
            self._sent = upto


def _first_stop(text: str, stops: list[str]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


# --- OpenAI's shapes ------------------------------------------------------------------
def usage(answer: Answer) -> dict[str, int]:
    return {"prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens}


def strata_field(answer: Answer, notes: list[str]) -> dict[str, Any]:
    """What OpenAI's shape has no place for: the route, its reason, sources, timings, cost."""
    return {
        "ledger_id": answer.ledger_id, "requested_mode": answer.requested_mode,
        "mode": answer.mode, "adapter": answer.adapter, "reason": answer.reason,
        "sources": [{"number": s.number, "name": s.name, "section": s.section, "page": s.page,
                     "score": s.score, "snippet": s.snippet} for s in answer.sources],
        "grounding": answer.grounding, "replaced": answer.generated is not None,
        "cost_usd": answer.cost_usd, "token_cost_usd": answer.token_cost_usd,
        "compute_cost_usd": answer.compute_cost_usd, "rerank_tokens": answer.rerank_tokens,
        "timings": {"router_ms": answer.router_ms, "retrieval_ms": answer.retrieval_ms,
                    "ttft_ms": answer.ttft_ms, "total_ms": answer.total_ms,
                    "tokens_per_s": answer.tokens_per_s},
        "standalone_query": answer.standalone_query, "history_turns": answer.history_turns,
        "notes": notes,
    }


def completion_body(run: Completion, model: str) -> dict[str, Any]:
    """The non-streamed response (``chat.completion``)."""
    text = run.text()
    answer = run.answer
    return {
        "id": run.id, "object": "chat.completion", "created": run.created, "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "logprobs": None, "finish_reason": run.finish_reason()}],
        "usage": usage(answer), "strata": strata_field(answer, run.request.notes),
    }


def chunk(run: Completion, model: str, delta: dict[str, Any] | None,
          finish: str | None = None, *, strata: dict[str, Any] | None = None,
          usage: dict[str, int] | None = None) -> dict[str, Any]:
    """One ``chat.completion.chunk``; delta None gives the usage chunk (no choices); the
    last text chunk carries ``strata`` (strata_field), the usage chunk ``usage``."""
    choices = [] if delta is None else [
        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    body = {"id": run.id, "object": "chat.completion.chunk", "created": run.created,
            "model": model, "system_fingerprint": None, "choices": choices}
    extra = {"strata": strata, "usage": usage}
    return {**body, **{name: value for name, value in extra.items() if value is not None}}
