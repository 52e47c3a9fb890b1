"""The answers' Prometheus metrics, served by ``GET /metrics`` (assistant/api/metrics.py).

One registry per app (not prometheus_client's global one), so two apps in one process (the
tests) count apart. Counted in this process since it started; Prometheus sums replicas:

- ``strata_answers_total{mode,outcome}``: outcome answered, quoted, no_context (see
  telemetry.outcome_of), cancelled, refused or error; mode is the routed one (the
  requested one for an answer that failed before routing),
- ``strata_answer_seconds{mode}``, ``strata_time_to_first_token_seconds{mode}``: histograms
  of answers given,
- ``strata_tokens_total{mode,type}``: type input (prompt and re-ranker) or output,
- ``strata_cost_usd_total{mode}``: what the answers were priced at (ledger/costs.py),
- ``strata_queue_depth``: answers started and not yet ended (generating, or waiting for
  the model),
- ``strata_answer_errors_total{mode,kind}``: refused and failed answers by exception type.
"""

from __future__ import annotations

# An answer on the CPU takes from a fraction of a second to a minute (docs/benchmarks.md).
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class AnswerMetrics:
    """Counters, histograms and a gauge of answers, in their own registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.answers = Counter("strata_answers", "Answers by mode and outcome.",
                               ["mode", "outcome"], registry=registry)
        self.latency = Histogram("strata_answer_seconds", "Time to a whole answer.",
                                 ["mode"], buckets=LATENCY_BUCKETS, registry=registry)
        self.ttft = Histogram("strata_time_to_first_token_seconds",
                              "Time from the question to the answer's first token.", ["mode"],
                              buckets=TTFT_BUCKETS, registry=registry)
        self.tokens = Counter("strata_tokens", "Tokens read (input: prompt and re-ranker) "
                              "and written (output).", ["mode", "type"], registry=registry)
        self.cost = Counter("strata_cost_usd", "Estimated cost of the answers in USD.",
                            ["mode"], registry=registry)
        self.queue = Gauge("strata_queue_depth", "Answers started and not yet ended "
                           "(generating or waiting for the model).", registry=registry)
        self.errors = Counter("strata_answer_errors", "Answers refused or failed, by "
                              "exception type.", ["mode", "kind"], registry=registry)

    def started(self) -> None:
        self.queue.inc()

    def finished(self, mode: str, outcome: str, total_s: float, ttft_s: float,
                 tokens_in: int, tokens_out: int, cost_usd: float) -> None:
        self.queue.dec()
        self.answers.labels(mode, outcome).inc()
        self.latency.labels(mode).observe(total_s)
        if ttft_s > 0:  # no_context answers have no first token
            self.ttft.labels(mode).observe(ttft_s)
        self.tokens.labels(mode, "input").inc(tokens_in)
        self.tokens.labels(mode, "output").inc(tokens_out)
        self.cost.labels(mode).inc(cost_usd)

    def failed(self, mode: str, outcome: str, kind: str, total_s: float) -> None:
        self.queue.dec()
        self.answers.labels(mode, outcome).inc()
        if outcome != "cancelled":
            self.errors.labels(mode, kind).inc()

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
