"""Where one answer's time goes, per mode, on the default engine.

Question (issue 31, item 3): once re-ranking runs on llama.cpp, which step of an answer
dominates in each mode: routing, retrieval, re-ranking, prompt building, generation, the
answer check or the ledger write? Measured in one process with the real pipeline
(``Services`` on the default settings, a fresh data folder holding the demo documents,
the bundled adapters), a few demo questions per mode after one warm-up answer per mode.

Each step's time comes from the answer's own spans (``Pipeline``'s trace: retrieval,
routing, rerank, the model call, grounding), read with an in-memory span exporter, plus
timers around the two steps that have no span: prompt building (``Pipeline.messages``
less its rerank span) and the ledger write (``Pipeline.record_answer``). ``other`` is the
rest of the answer's wall time (the question check, the stream's bookkeeping, pricing).
``rerank_likelihood`` is the part of the rerank step the scorer reads (the rest ranks the
passages' sentences by embedding). Each question is new to the embedder's query cache.
On a shared machine absolute times move with the load; the shares are the answer.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python -m research.answer_profile --questions 3 --out FILE``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from research import emit

QUESTIONS = ["How much is the new connection fee?", "What is the late payment fee?",
             "How do I report a leak?", "Who chairs the board?",
             "When was the cooperative founded?"]
WARM_UP = "What does the cooperative do?"
MODES = ("prompt", "adapter", "layered", "base")
STEPS = ("routing", "retrieval", "rerank", "prompt building", "generation", "answer check",
         "ledger write", "other")
# span name -> step (the model call's span is "chat <model>")
SPANS = {"strata.routing": "routing", "strata.retrieval": "retrieval",
         "strata.rerank": "rerank", "strata.grounding": "answer check"}

T = TypeVar("T")


def timed(into: list[float], call: Callable[..., T]) -> Callable[..., T]:
    """``call``, appending each call's wall time in ms to ``into``."""

    def wrapper(*args: object, **kwargs: object) -> T:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            into.append((time.perf_counter() - started) * 1000)

    return wrapper


def steps_of(spans: dict[str, float], messages_ms: float, ledger_ms: float,
             total_ms: float) -> dict[str, float]:
    """One answer's ms per step from its spans' ms (by name) and the two timers."""
    steps = dict.fromkeys(STEPS, 0.0)
    for name, ms in spans.items():
        if name in SPANS:
            steps[SPANS[name]] += ms
        elif name.startswith("chat "):
            steps["generation"] += ms
    steps["prompt building"] = max(messages_ms - steps["rerank"], 0.0)
    steps["ledger write"] = ledger_ms
    steps["other"] = max(total_ms - sum(steps.values()), 0.0)
    return {k: round(v, 1) for k, v in steps.items()}


def summarize(answers: list[dict[str, float]]) -> dict[str, object]:
    """Each step's median ms and its share of the median answer (medians of the steps)."""
    medians = {step: statistics.median(a[step] for a in answers) for step in STEPS}
    total = statistics.median(a["total"] for a in answers)
    shares = {step: round(ms / total, 3) if total else 0.0 for step, ms in medians.items()}
    reading = statistics.median(a.get("rerank_likelihood", 0.0) for a in answers)
    return {"answers": len(answers), "total_ms_median": round(total, 1),
            "rerank_likelihood_ms_median": round(reading, 1),
            "step_ms_median": {k: round(v, 1) for k, v in medians.items()},
            "share_of_answer": shares, "dominant": max(medians, key=lambda k: medians[k])}


def profile(questions: int, max_new_tokens: int | None) -> dict[str, object]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from assistant.ledger.telemetry import Telemetry
    from assistant.models.generation import SamplingParams
    from assistant.retrieval.ingest import ensure_demo_knowledge
    from assistant.services import Services
    from assistant.settings import Settings

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="strata-profile-")))
    telemetry = Telemetry(store_text=settings.ledger_store_text, tracer_provider=provider)
    services = Services(settings, telemetry=telemetry)
    ensure_demo_knowledge(settings, services.store)
    pipeline = services.pipeline
    messages_ms: list[float] = []
    ledger_ms: list[float] = []
    pipeline.messages = timed(messages_ms, pipeline.messages)  # type: ignore[method-assign]
    pipeline.record_answer = timed(ledger_ms, pipeline.record_answer)  # type: ignore[method-assign]
    likelihood_ms: list[float] = []  # the scorer's reading, inside the rerank span
    reranker = pipeline.reranker
    pipeline.reranker = timed(likelihood_ms, reranker)
    cache = getattr(services.embedder, "_cache", None)  # each question new to the embedder
    params = SamplingParams.from_settings(settings)  # the settings' answer length by default
    params = replace(params, max_new_tokens=max_new_tokens or params.max_new_tokens)
    result: dict[str, object] = {
        "engine": services.engine.engine, "reranker": type(services.reranker).__name__,
        "profile": pipeline.profile.name, "max_new_tokens": params.max_new_tokens}
    per_mode: dict[str, object] = {}
    for mode in MODES:
        pipeline.ask(WARM_UP, mode=mode, params=params)  # first use: contexts, caches
        answers = []
        for question in QUESTIONS[:questions]:
            for timer in (messages_ms, ledger_ms, likelihood_ms):
                timer.clear()
            exporter.clear()
            if cache is not None:
                cache.clear()
            started = time.perf_counter()
            answer = pipeline.ask(question, mode=mode, params=params)
            total = (time.perf_counter() - started) * 1000
            spans: dict[str, float] = {}
            for span in exporter.get_finished_spans():
                if span.end_time is not None and span.start_time is not None:
                    spans[span.name] = spans.get(span.name, 0.0) + (
                        span.end_time - span.start_time) / 1e6
            row = steps_of(spans, sum(messages_ms), sum(ledger_ms), total)
            answers.append({**row, "total": round(total, 1), "ttft_ms": answer.ttft_ms,
                            "rerank_likelihood": round(sum(likelihood_ms), 1),
                            "prompt_tokens": answer.prompt_tokens,
                            "completion_tokens": answer.completion_tokens,
                            "rerank_tokens": answer.rerank_tokens})
        per_mode[mode] = {**summarize(answers), "per_answer": answers}
    result["modes"] = per_mode
    services.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--questions", type=int, default=3, help="demo questions per mode")
    parser.add_argument("--max-new-tokens", type=int, help="default: the settings'")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    result: dict[str, object] = {
        "command": "python -m research.answer_profile "
                   + " ".join(argv if argv is not None else sys.argv[1:]),
        **profile(args.questions, args.max_new_tokens)}
    result["load_average"] = os.getloadavg()
    result["run_s"] = round(time.perf_counter() - started, 1)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
