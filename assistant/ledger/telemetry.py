"""Each answer where operators look: an OpenTelemetry trace and Prometheus metrics.

The ledger row is Strata's own record of an answer; operators' tools read two standard
formats. ``Telemetry`` hands the pipeline one ``AnswerTrace`` per answer, which makes:

- a **trace**: a root span ``strata.answer`` with a child span per step (``strata.routing``,
  ``strata.retrieval``, ``strata.rerank``, the model call ``chat <model>``,
  ``strata.grounding``), carrying the GenAI semantic conventions' attributes
  (``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.usage.input_tokens`` and
  ``output_tokens``) and Strata's own (``strata.mode``, ``strata.adapter``,
  ``strata.cost_usd``, ``strata.outcome``). The root counts the tokens the answer was
  priced for (the model's prompt and the re-ranker's reading), the model call its own.
  Spans are exported over OTLP (http/protobuf; grpc when ``OTEL_EXPORTER_OTLP_PROTOCOL``
  or ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` says ``grpc``) only when
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (Jaeger,
  Langfuse and Arize Phoenix read it); otherwise no span is made and no thread started.
- **metrics** for ``GET /metrics`` (prometheus.py): answers by mode and outcome, latency,
  time to first token, tokens, cost, answers in flight, errors.

With ``store_text`` off (``ASSISTANT_LEDGER_STORE_TEXT=false``) no question or answer text
goes into any span, nor an error's message (it may quote the question); with it on, at
most ``TEXT_CHARS`` characters of each. Spans are made with explicit parents, never the
"current" context: an answer is a generator whose steps may run on different threads.
opentelemetry and prometheus_client are imported only when a Telemetry is built.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sized
from typing import TYPE_CHECKING, Any, Protocol

from assistant.errors import AnswerCancelled, StrataError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span

    from assistant.ledger.prometheus import AnswerMetrics
    from assistant.models.generation import Generation
    from assistant.settings import Settings

log = logging.getLogger(__name__)
TEXT_CHARS = 200  # of the question and of the answer, in spans, when text is kept at all
SHUTDOWN_S = 2.0  # a stopping server waits this long for its last spans to go out
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
Attributes = Mapping[str, str | bool | int | float]


class Routed(Protocol):
    """What routing decided (answering.routing.Decision)."""

    @property
    def mode(self) -> str: ...
    @property
    def adapter(self) -> str | None: ...


class Finished(Routed, Protocol):
    """What a finished answer reports (answering.answer.Answer)."""

    @property
    def question(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def sources(self) -> Sized: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def rerank_tokens(self) -> int: ...
    @property
    def ttft_ms(self) -> float: ...
    @property
    def total_ms(self) -> float: ...
    @property
    def cost_usd(self) -> float: ...
    @property
    def finish_reason(self) -> str: ...
    @property
    def grounding(self) -> str | None: ...
    @property
    def history_turns(self) -> int: ...


def _quiet(method: Callable[..., None]) -> Callable[..., None]:
    """Telemetry never breaks an answer: a failure is logged, not raised."""
    def guarded(*args: Any, **kwargs: Any) -> None:
        try:
            method(*args, **kwargs)
        except Exception:  # noqa: BLE001
            log.exception("telemetry: %s failed", method.__name__)

    guarded.__name__ = method.__name__
    return guarded


class Telemetry:
    """Makes one ``AnswerTrace`` per answer; owns the tracer (if exporting) and the metrics."""

    def __init__(self, *, store_text: bool, tracer_provider: TracerProvider | None = None,
                 metrics: AnswerMetrics | None = None) -> None:
        from assistant.ledger.prometheus import AnswerMetrics

        self.store_text = store_text
        self.provider = tracer_provider
        self.tracer = tracer_provider.get_tracer("strata") if tracer_provider else None
        self.metrics = metrics or AnswerMetrics()
        self.untraced: AnswerTrace = Untraced()  # for a step run outside an answer

    @classmethod
    def from_settings(cls, settings: Settings, environ: Mapping[str, str] | None = None
                      ) -> Telemetry:
        """Exporting traces when the standard OTLP variables ask for it; metrics always."""
        return cls(store_text=settings.ledger_store_text,
                   tracer_provider=provider_from_env(os.environ if environ is None else environ))

    @property
    def exporting(self) -> bool:
        return self.tracer is not None

    def answer(self, requested_mode: str, model: str, backend: str | None) -> AnswerTrace:
        """The trace and metrics of one answer, started now."""
        return AnswerTrace(self, requested_mode, model, backend)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format (GET /metrics)."""
        return self.metrics.exposition()

    def flush(self) -> None:
        """Send the spans waiting in the exporter's batch now (tests, a stop)."""
        if self.provider is not None:
            self.provider.force_flush()

    def close(self, timeout_s: float = SHUTDOWN_S) -> None:
        """Send the last spans and stop the exporter's thread, waiting at most ``timeout_s``
        (an unreachable collector must not hold a stopping server)."""
        if self.provider is None:
            return
        done = threading.Thread(target=self.provider.shutdown, name="strata-otel-shutdown",
                                daemon=True)
        done.start()
        done.join(timeout_s)


def provider_from_env(environ: Mapping[str, str]) -> TracerProvider | None:
    """A TracerProvider exporting over OTLP, or None when no endpoint is set (or the SDK
    is disabled: ``OTEL_SDK_DISABLED=true``, ``OTEL_TRACES_EXPORTER=none``)."""
    endpoint = next((environ[name] for name in ENDPOINT_VARS if environ.get(name)), None)
    if not endpoint or environ.get("OTEL_SDK_DISABLED", "").lower() == "true" or \
            environ.get("OTEL_TRACES_EXPORTER", "").lower() == "none":
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES still apply (Resource.create reads them).
    named = {} if environ.get("OTEL_SERVICE_NAME") else {"service.name": "strata"}
    provider = TracerProvider(resource=Resource.create(named))
    provider.add_span_processor(BatchSpanProcessor(exporter_from_env(environ)))
    return provider


def exporter_from_env(environ: Mapping[str, str]) -> SpanExporter:
    """The OTLP span exporter the variables name: http/protobuf unless grpc is asked for.
    Headers, timeout, compression and certificates come from the standard variables."""
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").lower()
    traces = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=traces or base)
    if protocol != "http/protobuf":
        log.warning("OTLP protocol %r is not supported: sending http/protobuf", protocol)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # The signal's own variable is used as given; the base one gets the signal's path.
    return OTLPSpanExporter(endpoint=traces or base.rstrip("/") + "/v1/traces")


class Step:
    """One child span (or nothing, when traces are not exported)."""

    def __init__(self, span: Span | None) -> None:
        self.span = span

    def set(self, key: str, value: str | bool | int | float | None) -> None:
        if self.span is not None and value is not None:
            self.span.set_attribute(key, value)

    def end(self, error: BaseException | None = None) -> None:
        if self.span is None:
            return
        if error is not None:
            from opentelemetry.trace import StatusCode

            self.span.set_status(StatusCode.ERROR, type(error).__name__)
        self.span.end()
        self.span = None


class AnswerTrace:
    """One answer's spans and metrics: steps as they run, then ``finish`` or ``fail``
    (whichever comes first counts; the other is ignored)."""

    def __init__(self, telemetry: Telemetry, requested_mode: str, model: str,
                 backend: str | None) -> None:
        self.telemetry, self.model, self.backend = telemetry, model, backend or "local"
        self.mode = requested_mode  # the chosen one once routed
        self.started = time.perf_counter()
        self.done = False
        self._generation = Step(None)
        self._root: Span | None = None
        self._context: Context | None = None
        telemetry.metrics.started()
        tracer = telemetry.tracer
        if tracer is not None:
            from opentelemetry import trace

            self._root = tracer.start_span("strata.answer", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": model,
                "gen_ai.provider.name": backend, "strata.backend": backend,
                "strata.requested_mode": requested_mode})
            self._context = trace.set_span_in_context(self._root)

    def _start(self, name: str, attributes: Attributes, kind: str = "INTERNAL") -> Step:
        if self._root is None or self.telemetry.tracer is None:
            return Step(None)
        tracer = self.telemetry.tracer
        from opentelemetry.trace import SpanKind

        return Step(tracer.start_span(name, context=self._context, kind=SpanKind[kind],
                                      attributes=attributes))

    @contextlib.contextmanager
    def span(self, step: str, **attributes: str | int | float | bool) -> Iterator[Step]:
        """A child span ``strata.<step>`` around a block; ended with an error status if
        the block raises."""
        child = self._start(f"strata.{step}", {f"strata.{k}": v for k, v in attributes.items()})
        try:
            yield child
        except BaseException as exc:
            child.end(exc)
            raise
        child.end()

    def routed(self, mode: str, adapter: str | None) -> None:
        self.mode = str(mode)
        if self._root is not None:
            self._root.set_attribute("strata.mode", self.mode)
            if adapter:
                self._root.set_attribute("strata.adapter", adapter)

    def generating(self, adapter: str | None) -> None:
        """The model call begins (it spans the yields of a streamed answer)."""
        attributes: dict[str, Any] = {"gen_ai.operation.name": "chat",
                                      "gen_ai.request.model": self.model,
                                      "gen_ai.provider.name": self.backend,
                                      "gen_ai.request.stream": True}
        if adapter:
            attributes["strata.adapter"] = adapter
        self._generation = self._start(f"chat {self.model}", attributes, kind="CLIENT")

    def generated(self, generation: Generation) -> None:
        """The model call ended: its own usage, finish reason and time to first token."""
        step = self._generation
        step.set("gen_ai.usage.input_tokens", generation.usage.prompt_tokens)
        step.set("gen_ai.usage.output_tokens", generation.usage.completion_tokens)
        if generation.finish_reason:
            step.set("gen_ai.response.finish_reasons", generation.finish_reason)
        if generation.timings.ttft_ms:
            step.set("gen_ai.response.time_to_first_chunk", generation.timings.ttft_ms / 1000)
        step.end()

    @_quiet
    def finish(self, answer: Finished) -> None:
        """The answer is recorded: its outcome, usage and cost, in the metrics and spans."""
        if self.done:
            return
        self.done = True
        self._generation.end()
        self.mode = str(answer.mode)
        outcome = outcome_of(answer)
        tokens_in = answer.prompt_tokens + answer.rerank_tokens
        self.telemetry.metrics.finished(
            self.mode, outcome, answer.total_ms / 1000, answer.ttft_ms / 1000, tokens_in,
            answer.completion_tokens, answer.cost_usd)
        if self._root is None:
            return
        root = self._root
        root.set_attributes({
            "strata.mode": self.mode, "strata.outcome": outcome,
            "strata.cost_usd": float(answer.cost_usd), "strata.reason": answer.reason,
            "strata.sources": len(answer.sources), "strata.finish_reason": answer.finish_reason,
            "strata.ttft_ms": float(answer.ttft_ms), "strata.total_ms": float(answer.total_ms),
            "strata.history_turns": answer.history_turns,
            "gen_ai.usage.input_tokens": tokens_in,
            "gen_ai.usage.output_tokens": answer.completion_tokens})
        if answer.adapter:
            root.set_attribute("strata.adapter", answer.adapter)
        if answer.grounding:
            root.set_attribute("strata.grounding", answer.grounding.partition(":")[0])
        if self.telemetry.store_text:
            root.set_attribute("strata.question", answer.question[:TEXT_CHARS])
            root.set_attribute("strata.answer", answer.text[:TEXT_CHARS])
        root.end()

    @_quiet
    def fail(self, error: BaseException, decision: Routed | None = None) -> None:
        """The answer ended without one: cancelled (the reader left, the server stops),
        refused (a StrataError: an empty question, a full queue) or an error."""
        if self.done:
            return
        self.done = True
        self._generation.end(error)
        if decision is not None:
            self.routed(decision.mode, decision.adapter)
        outcome = ("cancelled" if isinstance(error, AnswerCancelled | GeneratorExit)
                   else "refused" if isinstance(error, StrataError) else "error")
        total_s = time.perf_counter() - self.started
        self.telemetry.metrics.failed(self.mode, outcome, type(error).__name__, total_s)
        if self._root is None:
            return
        from opentelemetry.trace import StatusCode

        self._root.set_attribute("strata.outcome", outcome)
        self._root.set_attribute("strata.mode", self.mode)
        self._root.set_attribute("error.type", type(error).__name__)
        message = type(error).__name__
        if self.telemetry.store_text:  # an error's message may quote the question
            message = f"{message}: {str(error)[:TEXT_CHARS]}"
        if outcome != "cancelled":
            self._root.set_status(StatusCode.ERROR, message)
        self._root.end()


def outcome_of(answer: Finished) -> str:
    """answered (the model's own words), quoted (the answer check replaced them by the
    documents' sentences) or no_context (prompt mode found no passage)."""
    if answer.finish_reason == "no_context":
        return "no_context"
    if (answer.grounding or "").startswith("quoted"):
        return "quoted"
    return "answered"


class Untraced(AnswerTrace):
    """No spans, no metrics: ``Pipeline.plan`` and ``messages`` called on their own (by a
    benchmark, by training data preparation) rather than for an answer."""

    def __init__(self) -> None:  # nothing to start: not the parent's
        self.done = True
        self._root = None
        self._generation = Step(None)
        self.mode = ""

    def routed(self, mode: str, adapter: str | None) -> None:
        pass

    def generating(self, adapter: str | None) -> None:
        pass
