"""Base model and adapter speed: decode tok/s per precision, prefill, adapter switch/load, RSS.

Each precision runs in its own subprocess so that peak RSS is that configuration's own.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"decode_tok_s_nf4": 45, "switch_p95_ms": 5, "cold_load_ms": 300, "peak_rss_mb": 1536}
STORY = [{"role": "user", "content": "Write a long story about a dragon who learns to sail."}]


def run(quick: bool = False) -> dict:
    adapters_dir = _make_adapters()  # here, so the fp32 copy it needs does not count in RSS
    results = {}
    for quant in ["nf4", "bf16", "fp32"]:
        cmd = [sys.executable, "-m", "bench.bench_models", quant, str(adapters_dir)]
        cmd += ["--quick"] if quick else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
        results[quant] = json.loads(out.stdout.strip().splitlines()[-1])
    nf4 = results["nf4"]
    return {
        "model": "smollm2-135m",
        "per_quant": results,
        "targets": TARGETS,
        "meets": {
            "decode_tok_s_nf4": nf4["decode_tok_s"] >= TARGETS["decode_tok_s_nf4"],
            "switch_p95_ms": nf4["adapter_switch_ms"]["p95"] <= TARGETS["switch_p95_ms"],
            "cold_load_ms": nf4["adapter_cold_load_ms"] <= TARGETS["cold_load_ms"],
            "peak_rss_mb": nf4["peak_rss_mb"] <= TARGETS["peak_rss_mb"],
        },
    }


def _make_adapters() -> Path:
    """Two random rank-16 LoRA adapters (q_proj, v_proj) for the real base, as training makes."""
    from assistant.models.base_models import REGISTRY, ensure_converted
    from assistant.settings import Settings
    from tests.tiny_models import save_tiny_adapter

    base_dir = ensure_converted(REGISTRY["smollm2-135m"], Settings().cache_dir)
    adapters_dir = Path(tempfile.mkdtemp(prefix="bench-adapters-"))
    for i, name in enumerate(["domain-a", "domain-b"]):
        save_tiny_adapter(base_dir, adapters_dir, name, seed=i, rank=16, base_name="smollm2-135m")
    return adapters_dir


def measure(quant: str, adapters_dir: Path, quick: bool) -> dict:
    """One precision: load, decode, prefill; for nf4 also adapter switch and cold load."""
    from assistant.models.adapters import AdapterManager
    from assistant.models.base_models import load_base_model
    from assistant.models.generation import Generator, SamplingParams
    from assistant.settings import Settings

    settings = Settings()
    base = load_base_model("smollm2-135m", settings.cache_dir, quant)
    manager = AdapterManager(adapters_dir, base, max_resident=4)
    gen = Generator(manager, SamplingParams(max_new_tokens=128, ignore_eos=True))
    reps = 2 if quick else 3
    gen.generate(STORY, SamplingParams(max_new_tokens=8))  # warm-up
    decode = [gen.generate(STORY).timings.tokens_per_s for _ in range(reps)]
    long_prompt = [{"role": "user", "content": _long_text(gen, 1000)}]
    prefill = [gen.generate(long_prompt, SamplingParams(max_new_tokens=1)).timings.ttft_ms
               for _ in range(reps)]
    result = {
        "quant": base.quant,
        "footprint_mb": round(base.footprint_bytes / 2**20, 1),
        "load_s": round(base.load_seconds, 2),
        "decode_tok_s": round(statistics.median(decode), 1),
        "decode_tok_s_all": decode,
        "prefill_tokens": len(gen.encode_chat(long_prompt)),
        "prefill_ms": round(statistics.median(prefill), 1),
    }
    if quant == "nf4":
        result.update(_adapter_timings(manager, quick))
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def peak_rss_mb() -> float:
    """This process's own peak RSS. Not ``ru_maxrss``: Linux carries that across fork and
    exec, so a child started by a 1.5 GB parent reported 1.5 GB whatever it used itself;
    /proc's VmHWM belongs to the process's own address space."""
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _adapter_timings(manager, quick: bool) -> dict:
    cold = []
    for _ in range(3 if quick else 7):
        manager.unload("domain-a")
        started = time.perf_counter()
        manager.load("domain-a")
        cold.append((time.perf_counter() - started) * 1000)
    manager.load("domain-b")
    switches = []
    for i in range(100 if quick else 400):
        started = time.perf_counter()
        with manager.using("domain-a" if i % 2 else "domain-b"):
            pass
        switches.append((time.perf_counter() - started) * 1000)
    switches.sort()
    return {
        "adapter_rank": 16,
        "adapter_cold_load_ms": round(statistics.median(cold[1:]), 1),  # first includes imports
        "adapter_cold_load_first_ms": round(cold[0], 1),
        "adapter_switch_ms": {
            "p50": round(switches[len(switches) // 2], 3),
            "p95": round(switches[int(len(switches) * 0.95)], 3),
        },
    }


def _long_text(gen, tokens: int) -> str:
    sentence = "The quick brown fox jumps over the lazy dog near the river bank. "
    text = sentence * (tokens // gen.count_tokens(sentence) + 1)
    ids = gen.tokenizer(text, add_special_tokens=False)["input_ids"][: tokens - 30]
    return gen.tokenizer.decode(ids)


def markdown(result: dict) -> str:
    rows = ["| precision | footprint | decode (128 tok, greedy) "
            "| prefill (~1,000 tok) | peak RSS |",
            "|---|---|---|---|---|"]
    for quant, r in result["per_quant"].items():
        rows.append(f"| {quant} | {r['footprint_mb']} MB | {r['decode_tok_s']} tok/s | "
                    f"{r['prefill_ms']:.0f} ms ({r['prefill_tokens']} tok) | "
                    f"{r['peak_rss_mb']:.0f} MB |")
    nf4, t, ok = result["per_quant"]["nf4"], result["targets"], result["meets"]
    mark = {True: "met", False: "**missed**"}
    rows += [
        "",
        "| adapter (rank 16, nf4 base) | measured | target | |",
        "|---|---|---|---|",
        f"| switch between resident adapters p50 / p95 | {nf4['adapter_switch_ms']['p50']} / "
        f"{nf4['adapter_switch_ms']['p95']} ms | <= {t['switch_p95_ms']} ms | "
        f"{mark[ok['switch_p95_ms']]} |",
        f"| cold load (median) | {nf4['adapter_cold_load_ms']} ms | <= {t['cold_load_ms']} ms | "
        f"{mark[ok['cold_load_ms']]} |",
        f"| decode nf4 | {nf4['decode_tok_s']} tok/s | >= {t['decode_tok_s_nf4']} tok/s | "
        f"{mark[ok['decode_tok_s_nf4']]} |",
        f"| peak RSS nf4 | {nf4['peak_rss_mb']:.0f} MB | <= {t['peak_rss_mb']} MB | "
        f"{mark[ok['peak_rss_mb']]} |",
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    import logging

    logging.disable(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(measure(sys.argv[1], Path(sys.argv[2]), "--quick" in sys.argv)))
