"""End-to-end answers per mode on the demo domain, and router decision time.

Per mode: p50/p95 time to first token and total time for 64 new tokens (EOS ignored so
every answer is the same length), and mean prompt tokens. Router: the time from question
to decision (query embedding + retrieval + profile comparison), on questions never seen
before so the query cache does not flatter it. Uses adapters/harrowgate-water when it is
there; otherwise a random rank-16 adapter with the demo profile stands in (same cost).
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

MODES = ["base", "prompt", "adapter", "layered"]
DOMAIN = Path("knowledge/harrowgate-water")
ROUTER_TARGET_P95_MS = 20
PROMPT_OVER_ADAPTER_TARGET = 1.5  # issue 19: prompt mode p50 total <= 1.5x adapter mode's


def _adapters_dir(tmp: Path) -> tuple[Path, str]:
    real = Path("adapters/harrowgate-water")
    if (real / "adapter_model.safetensors").is_file():
        return real.parent, "trained demo adapter"
    from bench.bench_models import _make_adapters

    made = _make_adapters()
    target = tmp / "adapters" / "harrowgate-water"
    shutil.copytree(made / "domain-a", target)
    shutil.copy(DOMAIN / "profile.json", target / "profile.json")
    return target.parent, "random rank-16 stand-in (no trained adapter yet)"


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def run(quick: bool = False) -> dict:
    from assistant.models.generation import SamplingParams
    from assistant.retrieval.ingest import ensure_demo_knowledge
    from assistant.services import Services
    from assistant.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    adapters_dir, adapter_kind = _adapters_dir(tmp)
    services = Services(Settings(data_dir=tmp / "data", adapters_dir=adapters_dir))
    ensure_demo_knowledge(services.settings, services.store)
    test = [json.loads(line) for line in (DOMAIN / "qa" / "test.jsonl").open()]
    routes = [json.loads(line) for line in (DOMAIN / "qa" / "routes.jsonl").open()]
    router_ms = _router_times([r["question"] for r in routes] + [q["question"] for q in test[:60]],
                              services)
    params = SamplingParams(max_new_tokens=64, ignore_eos=True, repetition_penalty=1.0)
    questions = [q["question"] for q in test if not q.get("out_of_scope")][: 4 if quick else 12]
    services.pipeline.ask(questions[0], mode="layered", params=params)  # warm-up: loads everything
    by_mode: dict[str, list] = {mode: [] for mode in MODES}
    for q in questions:  # modes in turn per question: other load falls on every mode alike
        for mode in MODES:
            by_mode[mode].append(services.pipeline.ask(q, mode=mode, params=params))
    per_mode = {}
    for mode, answers in by_mode.items():
        per_mode[mode] = {
            "count": len(answers),
            "ttft_ms": {"p50": _pct([a.ttft_ms for a in answers], 0.5),
                        "p95": _pct([a.ttft_ms for a in answers], 0.95)},
            "total_ms": {"p50": _pct([a.total_ms for a in answers], 0.5),
                         "p95": _pct([a.total_ms for a in answers], 0.95)},
            "mean_prompt_tokens": round(statistics.mean(a.prompt_tokens for a in answers), 1),
            "mean_cost_usd": statistics.mean(a.cost_usd for a in answers),
        }
    ratio = per_mode["prompt"]["total_ms"]["p50"] / per_mode["adapter"]["total_ms"]["p50"]
    return {"adapter": adapter_kind, "new_tokens": 64, "router": router_ms, "modes": per_mode,
            "router_target_p95_ms": ROUTER_TARGET_P95_MS,
            "prompt_over_adapter_p50": round(ratio, 2),
            "prompt_over_adapter_target": PROMPT_OVER_ADAPTER_TARGET}


def _router_times(questions: list[str], services) -> dict:
    services.router.decide(services.embedder.embed_query("warm up"), [])
    times = []
    for question in questions:
        started = time.perf_counter()
        vector = services.embedder.embed_query(question)
        hits = services.store.search(question, query_embedding=vector)
        services.router.decide(vector, hits)
        times.append((time.perf_counter() - started) * 1000)
    return {"count": len(times), "p50_ms": _pct(times, 0.5), "p95_ms": _pct(times, 0.95)}


def markdown(result: dict) -> str:
    rows = [f"64 new tokens per answer, {result['modes']['base']['count']} demo questions "
            f"per mode; adapter: {result['adapter']}.", "",
            "| mode | TTFT p50 / p95 | total p50 / p95 | mean prompt tokens | mean cost / answer |",
            "|---|---|---|---|---|"]
    for mode, m in result["modes"].items():
        rows.append(f"| {mode} | {m['ttft_ms']['p50']:.0f} / {m['ttft_ms']['p95']:.0f} ms | "
                    f"{m['total_ms']['p50']:.0f} / {m['total_ms']['p95']:.0f} ms | "
                    f"{m['mean_prompt_tokens']:.0f} | ${m['mean_cost_usd']:.7f} |")
    r = result["router"]
    verdict = "met" if r["p95_ms"] <= result["router_target_p95_ms"] else "**missed**"
    rows += ["", f"Router decision (query embedding + retrieval + profiles, {r['count']} unseen "
             f"questions): p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms "
             f"(target <= {result['router_target_p95_ms']} ms: {verdict})."]
    ratio = result.get("prompt_over_adapter_p50")
    if ratio is not None:
        target = result["prompt_over_adapter_target"]
        rows += ["", f"Prompt mode's p50 total over adapter mode's, same questions and answer "
                 f"length: {ratio:.2f}x (target <= {target}x: "
                 f"{'met' if ratio <= target else '**missed**'})."]
    return "\n".join(rows)
