"""One answer, from any entry point: route -> retrieve -> build messages -> generate -> ledger.

The CLI, the UI and the evaluation all come through ``Pipeline.stream`` so that every
answer is produced, measured and recorded the same way. The question is embedded once
and the vector serves the router, the retriever and the context condenser. What an answer
is made of (``Answer``, ``Source``, ``Prepared``) and its ledger row: answer.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from assistant.answering import conversation, grounding, prompts, rerank
from assistant.answering.answer import (
    MAX_QUESTION_CHARS,
    Answer,
    Prepared,
    Source,
    check_question,
    ledger_record,
    source_of,
)
from assistant.answering.inflight import STOPPING, InFlight
from assistant.answering.modes import Mode
from assistant.answering.routing import Decision
from assistant.errors import AnswerCancelled, ScoresUnavailable, StrataError
from assistant.ledger import costs
from assistant.ledger.store import AnswerRecord
from assistant.ledger.telemetry import AnswerTrace, Telemetry
from assistant.models import profiles
from assistant.models.generation import Generation, Timings, Usage
from assistant.text import storable

if TYPE_CHECKING:
    from assistant.answering.routing import Router
    from assistant.ledger.store import Ledger
    from assistant.models.adapters import AdapterManager
    from assistant.models.backend import Backend
    from assistant.models.base_models import LoadedModel
    from assistant.models.generation import SamplingParams, TokenStream
    from assistant.models.likelihood import QuestionLikelihood
    from assistant.retrieval.embeddings import SentenceEmbedder
    from assistant.retrieval.store import Hit, KnowledgeStore
    from assistant.settings import Settings

log = logging.getLogger(__name__)


class Pipeline:
    """Answers questions in a requested or routed mode, and records each in the ledger."""

    def __init__(self, settings: Settings, *, base: LoadedModel, adapters: AdapterManager,
                 backend: Backend, embedder: SentenceEmbedder, store: KnowledgeStore,
                 router: Router, reranker: QuestionLikelihood, ledger: Ledger,
                 profile: profiles.Profile | None = None,
                 telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        # traces (exported when OTEL_EXPORTER_OTLP_*ENDPOINT is set) and /metrics counters
        self.telemetry = telemetry or Telemetry.from_settings(settings)
        # answer settings of the answering model (context budget, re-ranking, answer check)
        self.profile = profile or profiles.resolve(settings)
        # the configured backend generates every answer (local, llama.cpp or a server);
        # ``base`` and ``adapters`` are the local model's, for names and adapter checks
        self.base, self.adapters, self.backend = base, adapters, backend
        self.embedder, self.store, self.router = embedder, store, router
        self.reranker, self.ledger = reranker, ledger
        self.in_flight = InFlight()  # the answers generating now, for a clean stop

    def stop(self) -> int:
        """The server is stopping: refuse new answers, end the running ones (each records
        its ledger row as cancelled); returns how many were running."""
        return self.in_flight.stop()

    def ask(self, question: str, mode: Mode | str = "auto", adapter: str | None = None,
            session_id: str | None = None, params: SamplingParams | None = None,
            domains: list[str] | None = None,
            history: Sequence[conversation.Turn] | None = None) -> Answer:
        stream = self.stream(question, mode, adapter, session_id, params, domains, history)
        for _ in stream:
            pass
        return stream.result()

    def stream(self, question: str, mode: Mode | str = "auto", adapter: str | None = None,
               session_id: str | None = None, params: SamplingParams | None = None,
               domains: list[str] | None = None,
               history: Sequence[conversation.Turn] | None = None) -> AnswerStream:
        """Start an answer; iterate for text pieces, then read ``.answer``.

        ``domains`` limits retrieval to documents of those domains (None: all of them).
        ``history`` is the conversation so far, oldest first, as {"role", "content"}
        messages (user and assistant); the question is the new user message.
        """
        return AnswerStream(self, question, mode, adapter, session_id, params, domains,
                            conversation.check_history(history))

    # --- the steps -------------------------------------------------------------------
    def plan(self, question: str, mode: Mode | str, adapter: str | None,
             domains: list[str] | None = None, trace: AnswerTrace | None = None
             ) -> tuple[Decision, list[Hit], float]:
        """Decide the mode and adapter, and retrieve when the mode needs passages
        (``trace``: the answer's spans, if it has them). ``question`` is what to search
        with: an answer's stream checked the user's question (``check_question``) and
        built it from that."""
        trace = trace or self.telemetry.untraced
        mode = Mode.parse(mode)
        if adapter is not None:
            self.adapters.check(adapter)
        started = time.perf_counter()
        searches = mode is Mode.AUTO or mode.retrieves
        needs_vector = searches or (mode is Mode.ADAPTER and not adapter)
        with trace.span("retrieval", searched=searches) as step:
            vector = self.embedder.embed_query(question) if needs_vector else None
            hits: list[Hit] = []
            if searches:
                hits = self.store.search(question, query_embedding=vector, domains=domains)
            step.set("strata.hits", len(hits))
        retrieval_ms = (time.perf_counter() - started) * 1000
        with trace.span("routing", requested_mode=str(mode)):
            if mode is Mode.AUTO:
                decision = self.router.decide(vector or [], hits)
                decision.router_ms = round(decision.router_ms + retrieval_ms, 3)
                if adapter and decision.mode.uses_adapter:
                    decision.adapter = adapter
            else:
                decision = self._forced(mode, adapter, vector)
        trace.routed(decision.mode, decision.adapter)
        if not decision.mode.retrieves:
            hits = []
        return decision, hits, retrieval_ms

    def _forced(self, mode: Mode, adapter: str | None, vector: Any) -> Decision:
        if mode.uses_adapter and adapter is None:
            adapter = self._best_adapter(vector)
        reason = f"{mode}: requested" + (f" (adapter {adapter})" if adapter else "")
        return Decision(mode=mode, adapter=adapter if mode.uses_adapter else None,
                        reason=reason)

    def _best_adapter(self, vector: Any) -> str:
        scores = self.router.adapter_scores(vector) if vector is not None else {}
        if scores:
            return max(scores, key=lambda name: scores[name])
        usable = [info.name for info in self.adapters.list() if info.ok]
        if not usable:
            raise StrataError("no usable adapter: train one with `assistant train` first")
        return usable[0]

    def messages(self, question: str, decision: Decision, hits: list[Hit],
                 history: Sequence[conversation.Turn] = (),
                 trace: AnswerTrace | None = None) -> Prepared:
        """The chat messages for the chosen mode, with the sources and sentences they show.

        The sentences of ``hits`` are ranked for ``question`` itself, also for a follow-up
        whose passages were searched with its standalone query: ranking by the joined
        query kept quoting the earlier turn's fact, and the re-ranker read every earlier
        turn again (measured: docs/evaluation.md, conversations). ``history`` goes between
        the instructions and the new message, trimmed to ``history_tokens``."""
        system = self._system_prompt(decision.adapter) if decision.adapter else None
        history = conversation.trim(history, self.settings.history_tokens,
                                    self.backend.count_tokens)
        if not decision.mode.retrieves:
            messages = prompts.plain_messages(question, system or prompts.BASE_SYSTEM)
            return Prepared(_with_history(messages, history), history_turns=len(history))
        ranked: list[prompts.ContextLine] = []
        lines: list[prompts.ContextLine] = []
        rerank_tokens = 0
        if hits:
            vector = self.embedder.embed_query(question)  # cached when plan() searched with it
            with (trace or self.telemetry.untraced).span("rerank") as step:
                ranked, rerank_tokens = self.rank(question, hits, vector)
                step.set("strata.rerank_tokens", rerank_tokens)
            lines = prompts.condense(ranked, self.backend.count_tokens,
                                     self.profile.max_context_tokens)
        context = prompts.format_context(lines)
        sources = [source_of(n, hits[n - 1]) for n in sorted({line.passage for line in lines})]
        if decision.mode == Mode.LAYERED:
            messages = prompts.layered_messages(question, context, system or "")
        else:
            messages = prompts.rag_messages(question, context)
        return Prepared(_with_history(messages, history), sources, lines, ranked, context,
                        rerank_tokens, hits, len(history))

    def rank(self, question: str, hits: list[Hit], vector: Any
             ) -> tuple[list[prompts.ContextLine], int]:
        """Every sentence of ``hits``, best first: the embedding ranking, its best
        ``rerank_candidates`` re-ranked by question likelihood (rerank.py). Also returns
        the tokens the re-ranker read, which the answer's cost includes."""
        embed = self.embedder.embed_documents
        ranked = prompts.rank_sentences(question, hits, vector, embed,
                                        getattr(self.store, "sentences", None))
        try:
            return rerank.rerank(question, ranked, self.reranker,
                                 self.profile.rerank_candidates)
        except ScoresUnavailable as exc:  # a server without prompt log-probabilities
            log.info("sentence re-ranking unavailable (%s): embedding ranking kept", exc)
            return ranked, 0

    def ground(self, question: str, text: str, prepared: Prepared,
               mode: Mode = Mode.PROMPT) -> tuple[str, str, str | None]:
        """The answer check of prompt and layered mode: (text to show, verdict, the
        model's text if replaced).

        An answer that makes up a specific, copies the worked example, states nothing from
        its context or (prompt mode) a specific its best-ranked sentence lacks is replaced by
        the best-ranked sentences, quoted (see grounding.py for why and how it was measured);
        a quoted passage the model was not shown is added to ``prepared.sources`` so every
        citation has its source.
        """
        count = self.profile.quote_sentences
        if not count or not prepared.lines:
            return text, "unchecked", None
        example, agree = "", None  # layered: no worked example; its adapter may know more
        if mode == Mode.PROMPT:
            example = prompts.RAG_EXAMPLE[1]
            if self.profile.agree_sentences:
                agree = grounding.best_text(prepared.ranked, self.profile.agree_sentences)
        result = grounding.check(text, prepared.context, question, example=example, agree=agree)
        if result.grounded:
            return text, "declined" if result.declined else "grounded", None
        if self.ledger.store_text:  # text not kept: no word of it in the log either
            log.info("%s answer replaced by quotes (%s): %r", mode, result.reason(), text[:200])
        else:
            log.info("%s answer replaced by quotes (%s)", mode, result.reason().partition(":")[0])
        quoted = grounding.quote(prepared.ranked, count)
        cited = {s.number for s in prepared.sources}
        quoted_passages = {line.passage for line in grounding.best_lines(prepared.ranked, count)}
        for number in sorted(quoted_passages - cited):
            prepared.sources.append(source_of(number, prepared.hits[number - 1]))
        prepared.sources.sort(key=lambda s: s.number)
        return quoted, f"quoted: {result.reason()}", text

    def _system_prompt(self, adapter: str) -> str:
        card = self.adapters.info(adapter).card
        return (card.system_prompt if card else None) or prompts.BASE_SYSTEM


class AnswerStream:
    """Text pieces of one answer as they are generated; records the ledger row at the end.

    Exactly one ledger row per answer: on success, on failure (with the error), and
    when the reader stops early (the partial answer, finish_reason "cancelled").
    """

    def __init__(self, pipeline: Pipeline, question: str, mode: Mode | str,
                 adapter: str | None,
                 session_id: str | None, params: SamplingParams | None,
                 domains: list[str] | None = None,
                 history: Sequence[conversation.Turn] = ()) -> None:
        self.pipeline = pipeline
        self.question, self.mode, self.adapter = question, mode, adapter
        self.session_id, self.params, self.domains = session_id, params, domains
        self.history = list(history)
        self.standalone: conversation.Standalone | None = None
        self.started = False  # __iter__ began: an answer runs once
        self.ledger_id: str | None = None  # the row of a failed or stopped answer
        self.answer: Answer | None = None
        self.decision: Decision | None = None
        self.sources: list[Source] = []
        self.prepared: Prepared | None = None
        self._cancelled = threading.Event()
        self._cancel_reason = STOPPING
        self._tokens: TokenStream | None = None  # the backend's token stream, once generating
        self.trace: AnswerTrace | None = None  # its spans and metrics, once started

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
        # A refused question is kept only up to the limit: never megabytes in the ledger.
        stored = storable(self.question, MAX_QUESTION_CHARS) if isinstance(
            self.question, str) else ""
        record = AnswerRecord(question=stored, session_id=self.session_id,
                              requested_mode=self.mode, profile=self.pipeline.profile.name,
                              backend=self.pipeline.backend.name)
        token_stream = None
        trace = self.trace = self.pipeline.telemetry.answer(
            self.mode, self.pipeline.base.name, record.backend)
        try:
            self.pipeline.in_flight.enter(self)  # refused once the server is stopping
            question = check_question(self.question)
            self.standalone = turn = conversation.standalone(question, self.history)
            decision, hits, retrieval_ms = self.pipeline.plan(
                turn.query, self.mode, self.adapter, self.domains, trace)
            self.decision = decision
            if decision.mode == Mode.PROMPT and not hits:
                # Prompt mode answers only from the documents; with no passage at all the
                # model would answer from memory ("The capital of Peru is Lima"), so say so.
                yield prompts.DECLINE
                self.answer = self._finish(_no_context(), decision, retrieval_ms, started, record)
                return
            preparing = time.perf_counter()
            history = [] if turn.kind == "topic change" else self.history
            self.prepared = self.pipeline.messages(turn.question, decision, hits, history,
                                                   trace)
            retrieval_ms += (time.perf_counter() - preparing) * 1000  # ranking + re-ranking
            messages, self.sources = self.prepared.messages, self.prepared.sources
            backend = self.pipeline.backend
            if self._cancelled.is_set():
                raise AnswerCancelled(self._cancel_reason)
            trace.generating(decision.adapter)
            token_stream = self._tokens = backend.stream(messages, self.params,
                                                         adapter=decision.adapter)
            if self._cancelled.is_set():  # cancel() came before _tokens was set
                token_stream.close()
            yield from token_stream
            generation = token_stream.wait()
            trace.generated(generation)
            if self._cancelled.is_set() and generation.finish_reason == "cancelled":
                raise AnswerCancelled(self._cancel_reason)
            self.answer = self._finish(generation, decision, retrieval_ms, started, record)
        except BaseException as exc:
            if token_stream is not None:
                token_stream.close()
            self._record_failure(record, exc, started)
            trace.fail(exc, self.decision)
            raise
        finally:
            self.pipeline.in_flight.leave(self)

    def _finish(self, gen: Generation, decision: Decision, retrieval_ms: float,
                started: float, record: AnswerRecord) -> Answer:
        pipeline = self.pipeline
        total_ms = (time.perf_counter() - started) * 1000
        # The re-ranker's reading is input the model processed for this answer: priced too.
        rerank_tokens = self.prepared.rerank_tokens if self.prepared is not None else 0
        breakdown = costs.estimate(gen.usage.prompt_tokens + rerank_tokens,
                                   gen.usage.completion_tokens, total_ms / 1000,
                                   pipeline.settings.base_model, pipeline.settings)
        answer = Answer(
            question=self.question, text=gen.text.strip(), requested_mode=self.mode,
            mode=decision.mode, adapter=decision.adapter, reason=decision.reason,
            scores=decision.scores, sources=self.sources,
            prompt_tokens=gen.usage.prompt_tokens, completion_tokens=gen.usage.completion_tokens,
            router_ms=decision.router_ms, retrieval_ms=round(retrieval_ms, 2),
            ttft_ms=gen.timings.ttft_ms, total_ms=round(total_ms, 2),
            tokens_per_s=gen.timings.tokens_per_s, cost_usd=breakdown.total_usd,
            finish_reason=gen.finish_reason, rerank_tokens=rerank_tokens,
            token_cost_usd=breakdown.token_usd, compute_cost_usd=breakdown.compute_usd,
            standalone_query=self.standalone.query if self.history and self.standalone else None,
            history_turns=self.prepared.history_turns if self.prepared is not None else 0,
        )
        trace = self.trace or pipeline.telemetry.untraced
        if decision.mode.checked and self.prepared is not None:
            with trace.span("grounding") as step:
                answer.text, answer.grounding, answer.generated = pipeline.ground(
                    self._query(), answer.text, self.prepared, decision.mode)
                step.set("strata.grounding", answer.grounding.partition(":")[0])
        ranking = None  # context sentences: re-ranked by likelihood, or not
        if self.prepared is not None and self.prepared.ranked:
            ranking = "likelihood" if self.prepared.rerank_tokens else "embedding"
        answer.extra.update(backend=record.backend, profile=record.profile, ranking=ranking)
        row = ledger_record(answer, record, pipeline.base, pipeline.settings.cost_hardware)
        answer.ledger_id = self.ledger_id = pipeline.ledger.record(row)
        trace.finish(answer)
        return answer

    @property
    def replaceable(self) -> bool:
        """Whether the answer check may still replace this answer's text by quotes once it
        is complete (prompt or layered mode, the profile's check on): a reader that cannot
        take back what it showed holds such an answer back. Known once routed (after the
        first piece); False before."""
        return bool(self.decision is not None and self.decision.mode.checked
                    and self.pipeline.profile.checks)

    def result(self) -> Answer:
        """The finished answer, once the stream has been read to its end."""
        if not self.started:  # nobody read it yet: run it to its end here
            for _ in self:
                pass
        if self.answer is None:  # the stream records an answer or raises; never both absent
            raise StrataError("the answer ended without a result")
        return self.answer

    def _query(self) -> str:
        """What this answer was searched with: the standalone query, else the question."""
        return self.standalone.query if self.standalone else self.question

    def _record_failure(self, record: AnswerRecord, exc: BaseException, started: float) -> None:
        if self.decision is not None:
            record.chosen_mode, record.adapter = self.decision.mode, self.decision.adapter
            record.reason = self.decision.reason
        record.total_ms = round((time.perf_counter() - started) * 1000, 2)
        record.error = "cancelled by the reader" if isinstance(exc, GeneratorExit) else (
            f"cancelled: {exc}" if isinstance(exc, AnswerCancelled)
            else f"{type(exc).__name__}: {exc}")
        record.base_model = self.pipeline.settings.base_model
        try:  # the row's id lets a stopped answer be voted on and saved with its turn
            self.ledger_id = self.pipeline.ledger.record(record)
        except Exception:  # never hide the original error behind a ledger problem
            log.exception("could not record the failed answer")


def _no_context() -> Generation:
    return Generation(prompts.DECLINE, Usage(), Timings(), finish_reason="no_context")


def _with_history(messages: list[dict[str, str]], history: Sequence[conversation.Turn]
                  ) -> list[dict[str, str]]:
    """``messages`` with the earlier turns just before the new user message."""
    return [*messages[:-1], *history, messages[-1]] if history else messages
