"""One answer, from any entry point: route -> retrieve -> build messages -> generate -> ledger.

The CLI, the UI and the evaluation all come through ``Pipeline.stream`` so that every
answer is produced, measured and recorded the same way. The question is embedded once
and the vector serves the router, the retriever and the context condenser. The pipeline
does the steps; the answer's stream (stream.py) runs them in order and holds the answer's
state. What an answer is made of (``Answer``, ``Source``, ``Prepared``) and its ledger
row: answer.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from assistant.answering import conversation, grounding, prompts, rerank
from assistant.answering.answer import (
    MAX_QUESTION_CHARS,
    Answer,
    Prepared,
    ledger_record,
    source_of,
)
from assistant.answering.inflight import InFlight
from assistant.answering.modes import Mode
from assistant.answering.routing import Decision
from assistant.answering.stream import AnswerStream, Request
from assistant.errors import ScoresUnavailable, StrataError
from assistant.ledger import costs
from assistant.ledger.store import AnswerRecord
from assistant.ledger.telemetry import AnswerTrace, Telemetry
from assistant.models import profiles
from assistant.text import storable

if TYPE_CHECKING:
    from assistant.answering.routing import Router
    from assistant.ledger.store import Ledger
    from assistant.models.adapters import AdapterManager
    from assistant.models.backend import Backend
    from assistant.models.base_models import LoadedModel
    from assistant.models.generation import SamplingParams, TokenStream
    from assistant.retrieval.embeddings import SentenceEmbedder
    from assistant.retrieval.store import Hit, KnowledgeStore
    from assistant.settings import Settings

log = logging.getLogger(__name__)


class Pipeline:
    """Answers questions in a requested or routed mode, and records each in the ledger."""

    def __init__(self, settings: Settings, *, base: LoadedModel, adapters: AdapterManager,
                 backend: Backend, embedder: SentenceEmbedder, store: KnowledgeStore,
                 router: Router, reranker: rerank.Scorer, ledger: Ledger,
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
        return AnswerStream(self, self.in_flight, Request(
            question, mode, adapter, session_id, params, domains,
            conversation.check_history(history)))

    # --- the steps, in the order an answer's stream runs them ---------------------------
    def begin(self, request: Request) -> tuple[AnswerRecord, AnswerTrace]:
        """The answer's ledger row as it starts (the row of a refusal too) and its trace."""
        # A refused question is kept only up to the limit: never megabytes in the ledger.
        question = request.question
        stored = storable(question, MAX_QUESTION_CHARS) if isinstance(question, str) else ""
        row = AnswerRecord(question=stored, session_id=request.session_id,
                           requested_mode=request.mode, profile=self.profile.name,
                           backend=self.backend.name)
        return row, self.telemetry.answer(request.mode, self.base.name, row.backend)

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

    def _forced(self, mode: Mode, adapter: str | None, vector: Sequence[float] | None
                ) -> Decision:
        if mode.uses_adapter and adapter is None:
            adapter = self._best_adapter(vector)
        reason = f"{mode}: requested" + (f" (adapter {adapter})" if adapter else "")
        return Decision(mode=mode, adapter=adapter if mode.uses_adapter else None,
                        reason=reason)

    def _best_adapter(self, vector: Sequence[float] | None) -> str:
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

    def rank(self, question: str, hits: list[Hit], vector: Sequence[float]
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

        An answer that makes up a specific, copies the worked example (prompt mode), states
        nothing from its context or a specific its best-ranked sentence lacks is replaced by
        the best-ranked sentences, quoted (see grounding.py for why and how it was measured);
        a quoted passage the model was not shown is added to ``prepared.sources`` so every
        citation has its source.
        """
        count = self.profile.quote_sentences
        if not count or not prepared.lines:
            return text, "unchecked", None
        example = prompts.RAG_EXAMPLE[1] if mode == Mode.PROMPT else ""  # layered shows none
        agree = None
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

    def may_replace(self, mode: Mode) -> bool:
        """Whether ``ground`` may replace an answer of ``mode`` (prompt or layered mode, the
        profile's check on): a reader that cannot take back what it showed holds it back."""
        return mode.checked and self.profile.checks

    def generate(self, messages: list[dict[str, str]], params: SamplingParams | None,
                 adapter: str | None) -> TokenStream:
        """The answer's tokens from the configured backend."""
        return self.backend.stream(messages, params, adapter=adapter)

    def price(self, input_tokens: int, output_tokens: int, seconds: float
              ) -> costs.CostBreakdown:
        """What an answer cost under the settings' prices (costs.py)."""
        return costs.estimate(input_tokens, output_tokens, seconds, self.settings.base_model,
                              self.settings)

    def record_answer(self, answer: Answer, started: AnswerRecord) -> str:
        """Record the finished ``answer`` (its row: ``started`` completed); returns the id."""
        # an engine with weights of its own (llama.cpp's GGUF) says what they are
        return self.ledger.record(ledger_record(answer, started, self.base,
                                                self.settings.cost_hardware,
                                                self.backend.quantization))

    def record_failure(self, started: AnswerRecord) -> str:
        """Record the row of an answer that failed or stopped; returns the id."""
        started.base_model = self.settings.base_model
        return self.ledger.record(started)

    def _system_prompt(self, adapter: str) -> str:
        card = self.adapters.info(adapter).card
        return (card.system_prompt if card else None) or prompts.BASE_SYSTEM


def _with_history(messages: list[dict[str, str]], history: Sequence[conversation.Turn]
                  ) -> list[dict[str, str]]:
    """``messages`` with the earlier turns just before the new user message."""
    return [*messages[:-1], *history, messages[-1]] if history else messages
