"""Why do 8 concurrent clients of the default engine get no more answer tokens per second
than one client asking the same questions one after another?

Question (issue 31, item 2): `python -m bench.run answer` measured 8 clients at 0.80x the
serial rate, over a mix of three models (the demo adapter, a second adapter and the base),
where the target is 3x. Is it the mix (each adapter group is its own decode step, so three
groups read the weights three times a step), the decode thread count (one by default), or
something every request pays whatever the batch (prefill, retrieval, routing, the ledger)?

Each composition (one adapter; the base alone; two adapters; the benchmark's mix of three)
is asked the same requests twice (16 distinct ones), serially from one client and from 8
clients at once (the second time a prompt may reuse cache cells of the first, as on a real
server: every prompt of one adapter shares the system prompt), on
one `assistant serve` as `make run` starts it (bench/answer_clients.py's ``AppServer``, the
same adapters folder as the benchmark's), once per ``ASSISTANT_DECODE_THREADS`` value. The
answer: per composition the speed-up (answer tokens per wall second, 8 clients over
serial), the median time the server took to its first token, and how many concurrent
answers have the serial answer's text.

``--steps`` asks the engine alone (no server): how long one decode step of the app's
multi-sequence context (backends/llamacpp_batch.py's ``Sequences``, opened through the app's
logits check) takes with 1, 2, 4 and 8 rows, the bare base and under the demo adapter's
converted LoRA, per decode-thread count: the most any batching of answers could gain here.
``--requantized q4_0,q8_0`` adds the bundled GGUF requantized to those types (timing only:
their batched products take other kernels than Q4_1's).

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python -m research.concurrency_split --out FILE``
(on an idle machine: llama.cpp's threads spin, so anything else running moves the figures).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from research import emit

CLIENTS = 8
ROUNDS = 2  # requests per client
QUESTIONS = CLIENTS * ROUNDS  # distinct questions: each mix asks as many distinct requests
ROWS = (1, 2, 4, 8)
STEPS = 48  # decode steps timed per row count (after the rows' prompts are read)
REPEATS = 3  # timings per row count, the median kept (the same run moved 1.2-1.6x)
PROMPT_TOKENS = 44  # the benchmark's serial answers read about as many


def compositions(adapter: str, second: str) -> dict[str, list[str]]:
    """Name -> the models whose answers are mixed (the benchmark's mix last)."""
    return {"one adapter": [adapter], "base only": ["strata-base"],
            "two adapters": [adapter, second],
            "three models (the benchmark's mix)": [adapter, second, "strata-base"]}


def work(questions: list[str], models: list[str], count: int) -> list[tuple[str, str]]:
    """``count`` (model, question) requests, models interleaved as the benchmark mixes them."""
    from bench.bench_answer import mix

    pairs = mix(questions, models)
    return [pairs[i % len(pairs)] for i in range(count)]


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None


def measure(url: str, questions: list[str], models: list[str]) -> dict[str, Any]:
    """The same requests serially, then from ``CLIENTS`` clients at once."""
    from bench.answer_clients import ask, client
    from bench.bench_answer import drive, level_summary

    requests = work(questions, models, CLIENTS * ROUNDS)
    one = client(url)
    started = time.perf_counter()
    serial = [ask(one, model, q) for model, q in requests]
    serial_wall = time.perf_counter() - started
    one.close()
    concurrent, wall = drive(url, CLIENTS, requests)
    s = level_summary(serial, serial_wall)
    c = level_summary(concurrent, wall, serial, s["tokens_per_s"])
    return {"models": models, "requests": len(requests),
            "serial": {k: s[k] for k in ("wall_s", "completion_tokens", "tokens_per_s")}
            | {"server_ttft_ms_median": _median([r.get("server_ttft_ms") for r in serial]),
               "server_total_ms_median": _median([r.get("server_total_ms") for r in serial])},
            "concurrent": {k: c[k] for k in ("wall_s", "completion_tokens", "tokens_per_s",
                                             "speedup", "same_text_as_serial", "errors",
                                             "p50_s", "p95_s")}
            | {"server_ttft_ms_median": _median([r.get("server_ttft_ms") for r in concurrent]),
               "server_total_ms_median": _median([r.get("server_total_ms")
                                                  for r in concurrent])}}


def run_setting(decode_threads: int) -> dict[str, Any]:
    """Every composition on one server started with ``ASSISTANT_DECODE_THREADS``."""
    from bench import answer_clients as app
    from bench.bench_answer import WARM_UP

    tmp = Path(tempfile.mkdtemp(prefix="concurrency-split-"))
    adapters = app.adapter_folder(tmp / "adapters")
    second = next(name for name in adapters if name != app.ADAPTER)
    server = app.AppServer(tmp, tmp / "adapters")
    server.env["ASSISTANT_DECODE_THREADS"] = str(decode_threads)
    questions = app.demo_questions(QUESTIONS)
    try:
        ready_s = server.start()
        one = app.client(server.url)
        for model in (app.ADAPTER, second, "strata-base"):
            app.ask(one, model, WARM_UP)
        one.close()
        runs = {name: measure(server.url, questions, models)
                for name, models in compositions(app.ADAPTER, second).items()}
        return {"decode_threads": decode_threads, "ready_s": round(ready_s, 1),
                "engine": server.engine(), "compositions": runs}
    except Exception as exc:
        raise RuntimeError(f"failed; the server's log: {server.log_path}") from exc
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def bundled_gguf() -> Path:
    """The GGUF the app serves (the configured base model's: the bundled one by default)."""
    from assistant.backends.llamacpp import gguf_for
    from assistant.settings import Settings

    return gguf_for(Settings())


def requantized(kind: str, folder: Path) -> Path:
    """The bundled GGUF requantized to ``kind`` (q4_0, q8_0: llama.cpp's own
    llama_model_quantize, from its 4-bit values, so only for timing, not for answers)."""
    import llama_cpp

    ftype = {"q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
             "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}[kind]
    out = folder / f"smollm2-135m.{kind}.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize = ftype, True
    if llama_cpp.llama_model_quantize(str(bundled_gguf()).encode(), str(out).encode(),
                                      ctypes.byref(params)) != 0:
        raise RuntimeError(f"llama.cpp could not requantize the GGUF to {kind}")
    return out


def step_times(threads: tuple[int, ...], gguf: Path) -> dict[str, Any]:
    """Tokens per second of decode steps with each row count, per thread count, for the
    bare base and under the demo adapter (its LoRA converted as the app converts it)."""
    import llama_cpp

    from assistant.backends.llamacpp_accuracy import open_checked
    from assistant.backends.llamacpp_batch import Sequences
    from assistant.backends.lora_gguf import convert
    from assistant.settings import Settings
    from bench.answer_clients import ADAPTER, ROOT

    out: dict[str, Any] = {}
    for count in threads:
        if gguf == bundled_gguf():  # as the app opens it
            llm, accuracy = open_checked(llama_cpp, gguf, n_ctx=128, n_batch=128,
                                         n_threads=count, n_threads_batch=count, verbose=False)
            extra: Any = accuracy.extra_buffers
        else:  # timing only: llama.cpp's defaults (extra buffers on), accuracy not checked
            llm, extra = llama_cpp.Llama(model_path=str(gguf), n_ctx=128, n_batch=128,
                                         n_threads=count, n_threads_batch=count,
                                         verbose=False), "llama.cpp default, unchecked"
        lora = llama_cpp.llama_adapter_lora_init(llm._model.model, str(convert(
            ROOT / "adapters" / ADAPTER, gguf, Settings().cache_dir)).encode())
        if not lora:
            raise RuntimeError(f"llama.cpp could not load the demo adapter on {gguf.name}")
        seqs = Sequences(llama_cpp, llm._model.model, llm.n_vocab(), 4096, max(ROWS), count,
                         count)
        prompt = llm.tokenize(b"The cooperative was founded in the valley by households "
                              b"who wanted their own water supply. " * 4)[:PROMPT_TOKENS]
        per: dict[str, Any] = {"extra_buffers": extra}
        for label, handle in (("base", None), ("adapter", lora)):
            seqs.use_adapter(handle)
            rates = {}
            for rows in ROWS:
                timed = []
                for _ in range(REPEATS):
                    seqs.clear()
                    for slot in range(rows):
                        seqs.decode([(t, i, slot, i == len(prompt) - 1)
                                     for i, t in enumerate(prompt)], prefill=True)
                    token = int(prompt[-1])
                    started = time.perf_counter()
                    for step in range(STEPS):
                        seqs.decode([(token, len(prompt) + step, slot, True)
                                     for slot in range(rows)], prefill=False)
                    timed.append(time.perf_counter() - started)
                seconds = statistics.median(timed)
                rates[str(rows)] = {"ms_per_step": round(seconds / STEPS * 1000, 2),
                                    "tokens_per_s": round(rows * STEPS / seconds, 1)}
            one = rates["1"]["tokens_per_s"]
            for rate in rates.values():
                rate["x_one_row"] = round(rate["tokens_per_s"] / one, 2)
            per[label] = rates
        seqs.use_adapter(None)
        llama_cpp.llama_adapter_lora_free(lora)
        llama_cpp.llama_batch_free(seqs._batch)
        llama_cpp.llama_free(seqs.ctx)  # before the model it computes with
        out[str(count)] = per
        llm.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m research.concurrency_split",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--decode-threads", default="1,2",
                        help="ASSISTANT_DECODE_THREADS values, one server each (default 1,2)")
    parser.add_argument("--steps", action="store_true",
                        help="time the engine's decode steps per row count instead (no server)")
    parser.add_argument("--requantized", default="",
                        help="with --steps: also time the bundled GGUF requantized to these "
                        "types (q4_0,q8_0), whose batched products take other kernels")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    started = time.time()
    threads = [int(t) for t in args.decode_threads.split(",")]
    if args.steps:
        found: dict[str, Any] = {
            "question": "one decode step of the engine's multi-sequence context with 1-8 "
                        "rows: the most batching could gain on this CPU (issue 31, item 2)",
            "prompt_tokens": PROMPT_TOKENS, "steps": STEPS, "repeats": REPEATS,
            "by_weights": {}}
        with tempfile.TemporaryDirectory() as folder:
            for kind in ["bundled", *filter(None, args.requantized.split(","))]:
                gguf = bundled_gguf() if kind == "bundled" else requantized(kind, Path(folder))
                found["by_weights"][f"{kind} ({gguf.name})"] = step_times(tuple(threads), gguf)
    else:
        found = {"question": "8 concurrent clients against serial, per mix of models and "
                             "decode threads (issue 31, item 2)",
                 "clients": CLIENTS, "rounds": ROUNDS, "questions": QUESTIONS,
                 "settings": [run_setting(t) for t in threads]}
    emit({**found, "load_average_end": [round(x, 2) for x in os.getloadavg()],
          "cores": os.cpu_count(), "minutes": round((time.time() - started) / 60, 1),
          "commit": commit,
          "command": "python -m research.concurrency_split " + " ".join(sys.argv[1:])},
         args.out)


if __name__ == "__main__":
    main()
