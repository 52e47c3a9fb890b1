"""One answer's run, from the question to its ledger row: ``AnswerStream``.

The stream owns the order of the steps and the answer's state as it grows; the pipeline
does each step (``Steps`` names all it is asked), so the stream never reaches into the
pipeline's backend, ledger or settings, and a step can change without the stream knowing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from assistant.answering import conversation, prompts
from assistant.answering.answer import Answer, Prepared, Ranking, Served, check_question
from assistant.answering.inflight import STOPPING, InFlight
from assistant.answering.modes import Mode
from assistant.errors import AnswerCancelled, StrataError
from assistant.models.generation import Generation, Timings, Usage

if TYPE_CHECKING:
    from assistant.answering.routing import Decision
    from assistant.ledger.costs import CostBreakdown
    from assistant.ledger.store import AnswerRecord
    from assistant.ledger.telemetry import AnswerTrace
    from assistant.models.generation import SamplingParams, TokenStream
    from assistant.retrieval.store import Hit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """What the caller asked. The question is checked when the stream runs, not here, so
    that a refused one still gets its ledger row."""

    question: str
    mode: Mode | str = Mode.AUTO
    adapter: str | None = None
    session_id: str | None = None
    params: SamplingParams | None = None
    domains: list[str] | None = None  # retrieval limited to these domains (None: all)
    history: Sequence[conversation.Turn] = ()  # earlier turns, oldest first


class Steps(Protocol):
    """The steps of one answer, as the pipeline does them (``Pipeline`` is one)."""

    def begin(self, request: Request) -> tuple[AnswerRecord, AnswerTrace]:
        """The answer's ledger row as it starts, and its trace."""
        ...

    def plan(self, question: str, mode: Mode | str, adapter: str | None,
             domains: list[str] | None = None, trace: AnswerTrace | None = None
             ) -> tuple[Decision, list[Hit], float]: ...

    def messages(self, question: str, decision: Decision, hits: list[Hit],
                 history: Sequence[conversation.Turn] = (),
                 trace: AnswerTrace | None = None) -> Prepared: ...

    def generate(self, messages: list[dict[str, str]], params: SamplingParams | None,
                 adapter: str | None) -> TokenStream: ...

    def ground(self, question: str, text: str, prepared: Prepared,
               mode: Mode = Mode.PROMPT) -> tuple[str, str, str | None]: ...

    def may_replace(self, mode: Mode) -> bool:
        """Whether the answer check may replace an answer of ``mode`` by quotes."""
        ...

    def price(self, input_tokens: int, output_tokens: int, seconds: float) -> CostBreakdown:
        ...

    def record_answer(self, answer: Answer, started: AnswerRecord) -> str:
        """Record the finished answer (its row: ``started`` completed); returns the id."""
        ...

    def record_failure(self, started: AnswerRecord) -> str:
        """Record the row of an answer that failed or stopped; returns the id."""
        ...


class AnswerStream:
    """Text pieces of one answer as they are generated; records the ledger row at the end.

    Exactly one ledger row per answer: on success, on failure (with the error), and
    when the reader stops early (the partial answer, finish_reason "cancelled").
    """

    def __init__(self, steps: Steps, in_flight: InFlight, request: Request) -> None:
        self._steps, self._in_flight, self.request = steps, in_flight, request
        self.started = False  # __iter__ began: an answer runs once
        self.standalone: conversation.Standalone | None = None  # the question, as searched
        self.decision: Decision | None = None  # once routed
        self.prepared: Prepared | None = None  # once the messages are built
        self.answer: Answer | None = None  # once finished
        self.ledger_id: str | None = None  # its row (also of a failed or stopped answer)
        self.trace: AnswerTrace | None = None  # its spans and metrics, once started
        self._cancelled = threading.Event()
        self._cancel_reason = STOPPING
        self._tokens: TokenStream | None = None  # the backend's token stream, once generating

    def cancel(self, reason: str = STOPPING) -> None:
        """End at the next token, from any thread (the server is stopping, the reader left);
        the reader gets AnswerCancelled and the ledger row says "cancelled: <reason>"."""
        self._cancel_reason = reason
        self._cancelled.set()
        if self._tokens is not None:
            self._tokens.close()

    def __iter__(self) -> Generator[str, None, None]:  # a generator: readers may close() it
        self.started = True
        started = time.perf_counter()
        request, steps = self.request, self._steps
        record, trace = steps.begin(request)
        self.trace = trace
        token_stream = None
        try:
            self._in_flight.enter(self)  # refused once the server is stopping
            question = check_question(request.question)
            self.standalone = turn = conversation.standalone(question, request.history)
            decision, hits, retrieval_ms = steps.plan(
                turn.query, request.mode, request.adapter, request.domains, trace)
            self.decision = decision
            if decision.mode == Mode.PROMPT and not hits:
                # Prompt mode answers only from the documents; with no passage at all the
                # model would answer from memory ("The capital of Peru is Lima"), so say so.
                yield prompts.DECLINE
                self.answer = self._finish(_no_context(), retrieval_ms, started, record)
                return
            preparing = time.perf_counter()
            history = [] if turn.kind == "topic change" else request.history
            self.prepared = steps.messages(turn.question, decision, hits, history, trace)
            retrieval_ms += (time.perf_counter() - preparing) * 1000  # ranking + re-ranking
            if self._cancelled.is_set():
                raise AnswerCancelled(self._cancel_reason)
            trace.generating(decision.adapter)
            token_stream = self._tokens = steps.generate(
                self.prepared.messages, request.params, decision.adapter)
            if self._cancelled.is_set():  # cancel() came before _tokens was set
                token_stream.close()
            yield from token_stream
            generation = token_stream.wait()
            trace.generated(generation)
            if self._cancelled.is_set() and generation.finish_reason == "cancelled":
                raise AnswerCancelled(self._cancel_reason)
            self.answer = self._finish(generation, retrieval_ms, started, record)
        except BaseException as exc:
            if token_stream is not None:
                token_stream.close()
            self._record_failure(record, exc, started)
            trace.fail(exc, self.decision)
            raise
        finally:
            self._in_flight.leave(self)

    def _finish(self, gen: Generation, retrieval_ms: float, started: float,
                record: AnswerRecord) -> Answer:
        """The answer from the generation and what the steps decided; checked, recorded."""
        decision, prepared = self._routed(), self.prepared
        total_ms = (time.perf_counter() - started) * 1000
        # The re-ranker's reading is input the model processed for this answer: priced too.
        rerank_tokens = prepared.rerank_tokens if prepared is not None else 0
        price = self._steps.price(gen.usage.prompt_tokens + rerank_tokens,
                                  gen.usage.completion_tokens, total_ms / 1000)
        answer = Answer(
            question=self.request.question, text=gen.text.strip(),
            requested_mode=self.request.mode, mode=decision.mode, adapter=decision.adapter,
            reason=decision.reason, scores=decision.scores,
            sources=prepared.sources if prepared is not None else [],
            prompt_tokens=gen.usage.prompt_tokens, completion_tokens=gen.usage.completion_tokens,
            router_ms=decision.router_ms, retrieval_ms=round(retrieval_ms, 2),
            ttft_ms=gen.timings.ttft_ms, total_ms=round(total_ms, 2),
            tokens_per_s=gen.timings.tokens_per_s, cost_usd=price.total_usd,
            finish_reason=gen.finish_reason, rerank_tokens=rerank_tokens,
            token_cost_usd=price.token_usd, compute_cost_usd=price.compute_usd,
            standalone_query=self._query() if self.request.history else None,
            history_turns=prepared.history_turns if prepared is not None else 0,
        )
        trace = self._traced()
        if decision.mode.checked and prepared is not None:
            with trace.span("grounding") as step:
                answer.text, answer.grounding, answer.generated = self._steps.ground(
                    self._query(), answer.text, prepared, decision.mode)
                step.set("strata.grounding", answer.grounding.partition(":")[0])
        ranking: Ranking | None = None  # None: no context sentences
        if prepared is not None and prepared.ranked:
            ranking = "likelihood" if prepared.rerank_tokens else "embedding"
        answer.extra.update(Served(backend=record.backend, profile=record.profile,
                                   ranking=ranking))
        answer.ledger_id = self.ledger_id = self._steps.record_answer(answer, record)
        trace.finish(answer)
        return answer

    @property
    def replaceable(self) -> bool:
        """Whether the answer check may still replace this answer's text by quotes once it
        is complete (prompt or layered mode, the profile's check on): a reader that cannot
        take back what it showed holds such an answer back. Known once routed (after the
        first piece); False before."""
        return self.decision is not None and self._steps.may_replace(self.decision.mode)

    def result(self) -> Answer:
        """The finished answer, once the stream has been read to its end."""
        if not self.started:  # nobody read it yet: run it to its end here
            for _ in self:
                pass
        if self.answer is None:  # the stream records an answer or raises; never both absent
            raise StrataError("the answer ended without a result")
        return self.answer

    def _routed(self) -> Decision:
        if self.decision is None:  # _finish runs after plan(): never
            raise StrataError("the answer finished before it was routed")
        return self.decision

    def _traced(self) -> AnswerTrace:
        if self.trace is None:  # __iter__ sets it first: never
            raise StrataError("the answer finished before it started")
        return self.trace

    def _query(self) -> str:
        """What this answer was searched with: the standalone query, else the question."""
        return self.standalone.query if self.standalone else self.request.question

    def _record_failure(self, record: AnswerRecord, exc: BaseException, started: float) -> None:
        if self.decision is not None:
            record.chosen_mode, record.adapter = self.decision.mode, self.decision.adapter
            record.reason = self.decision.reason
        record.total_ms = round((time.perf_counter() - started) * 1000, 2)
        record.error = "cancelled by the reader" if isinstance(exc, GeneratorExit) else (
            f"cancelled: {exc}" if isinstance(exc, AnswerCancelled)
            else f"{type(exc).__name__}: {exc}")
        try:  # the row's id lets a stopped answer be voted on and saved with its turn
            self.ledger_id = self._steps.record_failure(record)
        except Exception:  # never hide the original error behind a ledger problem
            log.exception("could not record the failed answer")


def _no_context() -> Generation:
    return Generation(prompts.DECLINE, Usage(), Timings(), finish_reason="no_context")

