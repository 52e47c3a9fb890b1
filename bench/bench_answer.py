"""What the user feels: answers of a real `assistant serve` against the engine's floor.

``python -m bench.run answer [--questions N] [--concurrency 8,16] [--rounds R]
[--second-adapter PATH]`` starts `assistant serve` as `make run` does (default settings:
``ASSISTANT_BACKEND=auto``, llama.cpp in the app's process where it passes its check; a
scratch data directory the app fills with the demo documents at start), then:

1. Per mode (prompt, adapter with the demo adapter, layered) it asks the first N demo
   questions (knowledge/harrowgate-water/qa/test.jsonl) through ``/v1`` with the official
   ``openai`` client, streamed, one at a time after a warm-up answer per model: the time to
   the first text and to the end, as the client sees them.
2. The floor of each of those answers, measured right after it while the server idles (the
   same load on a shared machine): plain llama.cpp in its own process, the same GGUF in the
   configuration the app's logits check chooses on this host, reading a prompt of the
   answer's prompt token count and writing its answer token count, with 1 and 2 threads;
   the answer's floor is the faster. Each mode's figure is the median over its answers of
   answer time / floor.
3. Concurrency: the same questions mixed over the demo adapter, a second adapter and the
   base, first serially (one client), then from C clients at once for each C in
   ``--concurrency`` (R x C requests each): answer tokens per second of wall time against
   the serial run's, the answer times (p50, p95) and how many answers are the serial
   answer's text (greedy decoding: batched kernels may round differently).

Prompt and layered answers reach an API client in one piece at the end (the answer check
may replace them: api/answers.py), so their first text is their whole answer. The share of
the answer spent before generation (retrieval, ranking, the re-ranker's reading) is the
server's own ``retrieval_ms`` over the client's time. Timings on a shared machine move with
its load (recorded); ratios within one run are what compare.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.bench_soak import percentile
from bench.together import run_together

QUESTIONS = 6
LEVELS = (8, 16)
ROUNDS = 1  # requests per client at each concurrency level
QUICK_QUESTIONS, QUICK_LEVELS = 2, (2,)  # --quick: a smoke run
TARGET_RATIO = 1.5  # every mode's median answer time / its floor
TARGET_SPEEDUP = 3.0  # 8 clients' answer tokens/s / serial
SPEEDUP_AT = 8
WARM_UP = "What are the opening hours of the head office in Fenmoor?"  # not among the timed


def options(argv: Sequence[str]) -> dict[str, Any]:
    """This benchmark's options (``python -m bench.run answer`` passes what follows)."""
    parser = argparse.ArgumentParser(prog="python -m bench.run answer")
    parser.add_argument("--questions", type=int, default=QUESTIONS,
                        help=f"demo questions per mode (default {QUESTIONS})")
    parser.add_argument("--concurrency", type=_levels, default=LEVELS, metavar="C,C",
                        help=f"concurrent clients per level (default {','.join(map(str, LEVELS))}"
                        "; 0: none)")
    parser.add_argument("--rounds", type=int, default=ROUNDS,
                        help=f"requests per client at each level (default {ROUNDS})")
    parser.add_argument("--second-adapter", type=Path, default=None, metavar="PATH",
                        help="a trained adapter folder for the mix (default: the demo "
                        "adapter with halved LoRA weights)")
    args = parser.parse_args(list(argv))
    return {"questions": args.questions, "levels": args.concurrency, "rounds": args.rounds,
            "second_adapter": args.second_adapter}


def _levels(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.split(",") if n.strip() and int(n) > 0)


# --- the figures (pure: tests/unit/test_bench_answer.py) -------------------------------------
def median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def answer_floor(record: dict[str, Any]) -> dict[str, float] | None:
    """The faster thread count's floor for this answer (``floor_by_threads``: per thread
    count, the seconds to the first token and to the last for its token counts; a total of
    None where that count was stopped once slower than another)."""
    found = [f for f in (record.get("floor_by_threads") or {}).values()
             if f.get("total_s") is not None]  # None: gave up once slower than another
    return min(found, key=lambda f: f["total_s"]) if found else None


def mode_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of one mode's answers, each answer's time over its floor's, the target."""
    ok = [r for r in records if "error" not in r]
    ratios, ttft_ratios, floors, shares = [], [], [], []
    for r in ok:
        f = answer_floor(r)
        if f:
            r["floor_s"], r["floor_ttft_s"] = f["total_s"], f["ttft_s"]
            r["ratio"] = round(r["total_s"] / f["total_s"], 3)
            ratios.append(r["ratio"])
            ttft_ratios.append(r["ttft_s"] / f["ttft_s"])
            floors.append(f["total_s"])
        if r.get("retrieval_ms") is not None and r["total_s"] > 0:
            shares.append(r["retrieval_ms"] / 1000 / r["total_s"])
    ratio = median(ratios)
    return {"answers": len(records), "errors": len(records) - len(ok),
            "prompt_tokens": median([r["prompt_tokens"] for r in ok]),
            "completion_tokens": median([r["completion_tokens"] for r in ok]),
            "rerank_tokens": median([r.get("rerank_tokens") or 0 for r in ok]),
            "ttft_s": median([r["ttft_s"] for r in ok]),
            "total_s": median([r["total_s"] for r in ok]),
            "floor_s": median(floors), "ratio": ratio,
            "ttft_ratio": median(ttft_ratios), "before_generation_share": median(shares),
            "meets": ratio is not None and ratio <= TARGET_RATIO, "records": records}


def level_summary(records: list[dict[str, Any]], wall_s: float,
                  serial: list[dict[str, Any]] | None = None,
                  serial_tokens_per_s: float | None = None) -> dict[str, Any]:
    """Answer tokens per second of wall time, answer times, and against the serial run:
    the speed-up and how many answers are the serial answer's text."""
    ok = [r for r in records if "error" not in r]
    tokens = sum(r["completion_tokens"] or 0 for r in ok)
    times = [r["total_s"] for r in ok]
    summary: dict[str, Any] = {
        "clients": len({r.get("client", 0) for r in records}), "requests": len(records),
        "errors": len(records) - len(ok), "wall_s": round(wall_s, 2),
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / wall_s, 2) if wall_s > 0 else None,
        "p50_s": percentile(times, 0.5), "p95_s": percentile(times, 0.95)}
    if serial is not None:
        texts = {(r["model"], r["question"]): r.get("text") for r in serial}
        for r in ok:
            r["same_as_serial"] = texts.get((r["model"], r["question"])) == r["text"]
        summary["same_text_as_serial"] = sum(r["same_as_serial"] for r in ok)
        base, tps = serial_tokens_per_s, summary["tokens_per_s"]
        summary["speedup"] = round(tps / base, 2) if base and tps is not None else None
    summary["records"] = [{k: r.get(k) for k in ("client", "model", "question", "total_s",
                                                 "ttft_s", "completion_tokens", "same_as_serial",
                                                 "error")
                           if r.get(k) is not None} for r in records]
    return summary


def mix(questions: list[str], models: list[str]) -> list[tuple[str, str]]:
    """(model, question) pairs: every question asked of every model, models interleaved."""
    return [(model, q) for q in questions for model in models]


# --- the run --------------------------------------------------------------------------------
def run(quick: bool = False, questions: int = QUESTIONS, levels: Sequence[int] = LEVELS,
        rounds: int = ROUNDS, second_adapter: Path | None = None) -> dict[str, Any]:
    from bench import answer_clients as app

    if quick:
        questions, levels, rounds = QUICK_QUESTIONS, QUICK_LEVELS, 1
    asked = app.demo_questions(questions)
    tmp = Path(tempfile.mkdtemp(prefix="bench-answer-"))
    adapters = app.adapter_folder(tmp / "adapters", second_adapter)
    second = next(name for name in adapters if name != app.ADAPTER)
    models = {"prompt": "strata-prompt", "adapter": app.ADAPTER, "layered": "strata-layered"}
    server = app.AppServer(tmp, tmp / "adapters")
    load_start = [round(x, 2) for x in os.getloadavg()]
    try:
        measured = _measure(server, tmp, asked, models,
                            [app.ADAPTER, second, "strata-base"], levels, rounds)
    except Exception as exc:
        raise RuntimeError(f"answer benchmark failed; the server's log: {server.log_path}") \
            from exc
    finally:
        server.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    load_end = [round(x, 2) for x in os.getloadavg()]
    return {
        "questions": len(asked), "questions_file": str(app.QUESTIONS_FILE.relative_to(app.ROOT)),
        "server": {"command": "assistant serve --host 127.0.0.1 --port PORT",
                   "settings": "defaults (ASSISTANT_BACKEND=auto); scratch ASSISTANT_DATA_DIR "
                               "(demo documents ingested at start); ASSISTANT_ADAPTERS_DIR with "
                               "the adapters below",
                   "engine": measured["engine"], "adapters": adapters,
                   "ready_s": measured["ready_s"], "rss_mb": measured["rss"]},
        "floor": measured["floor"], "target_ratio": TARGET_RATIO,
        "modes": {mode: {"model": models[mode], **mode_summary(recs)}
                  for mode, recs in measured["modes"].items()},
        "concurrency": measured["concurrency"] | {"target_speedup": TARGET_SPEEDUP,
                                                  "target_clients": SPEEDUP_AT},
        "load_average": {"start": load_start, "end": load_end, "cores": os.cpu_count()},
        "note": shared_note(load_start, os.cpu_count() or 1),
    }


def shared_note(load: list[float], cores: int) -> str | None:
    """Said when other work shared the cores at the start (the 1-minute load average)."""
    if load[0] < 0.5 * cores:
        return None
    return (f"the machine was shared (load average {load[0]} on {cores} cores at the start): "
            "absolute times are slower than idle; compare the ratios within this run")


def _measure(server: Any, tmp: Path, asked: list[str], models: dict[str, str],
             mixed: list[str], levels: Sequence[int], rounds: int) -> dict[str, Any]:
    from bench.answer_clients import Floor, client

    ready_s = server.start()
    engine = server.engine()
    one = client(server.url)
    for model in dict.fromkeys([*models.values(), *mixed]):  # LoRA conversion, caches
        _check(_ask(one, model, WARM_UP))
    rss = {"after_warmup_mb": server.rss()["VmRSS"]}
    floor: Floor | None = None
    try:
        floor = Floor(tmp / "floor.log")
        floor_info = floor.info
    except Exception as exc:  # noqa: BLE001 - the app's figures stand without their floor
        floor_info = {"error": str(exc)}
    modes: dict[str, list[dict[str, Any]]] = {mode: [] for mode in models}
    try:
        for mode, model in models.items():
            for question in asked:
                record = _ask(one, model, question)
                if floor is not None and record.get("completion_tokens"):
                    # right after the answer, while the server idles: the same load
                    record["floor_by_threads"] = floor.measure(record["prompt_tokens"],
                                                               record["completion_tokens"])
                modes[mode].append(record)
    finally:
        if floor is not None:
            floor.close()
    concurrency = _concurrency_runs(server.url, one, mix(asked, mixed), levels, rounds)
    concurrency["mix"] = mixed
    one.close()
    after = server.rss()
    rss.update(after_run_mb=after["VmRSS"], peak_mb=after["VmHWM"])
    return {"ready_s": round(ready_s, 1), "engine": engine, "floor": floor_info,
            "modes": modes, "concurrency": concurrency, "rss": rss}


def _concurrency_runs(url: str, one: Any, pairs: list[tuple[str, str]],
                      levels: Sequence[int], rounds: int) -> dict[str, Any]:
    """The pairs serially from one client, then ``rounds`` x C requests from C clients."""
    concurrency: dict[str, Any] = {"rounds": rounds, "levels": {}}
    if not levels:
        return concurrency
    started = time.perf_counter()
    serial = [_ask(one, model, q) for model, q in pairs]
    concurrency["serial"] = level_summary(serial, time.perf_counter() - started)
    for level in levels:
        work = [pairs[i % len(pairs)] for i in range(level * rounds)]
        records, wall = drive(url, level, work)
        concurrency["levels"][str(level)] = level_summary(
            records, wall, serial, concurrency["serial"]["tokens_per_s"])
    return concurrency


def _ask(openai_client: Any, model: str, question: str) -> dict[str, Any]:
    from bench.answer_clients import ask

    return ask(openai_client, model, question)


def _check(record: dict[str, Any]) -> None:
    if "error" in record:
        raise RuntimeError(f"warm-up answer from {record['model']} failed: {record['error']}")


def drive(url: str, clients: int, work: list[tuple[str, str]],
          ask: Callable[..., dict[str, Any]] | None = None) -> tuple[list[dict[str, Any]], float]:
    """``work`` from ``clients`` threads (each its own openai client), all released at
    once, each taking the next request when its last ended; (records, wall seconds)."""
    from bench.answer_clients import client

    ask = ask or _ask
    queue, lock, records = list(work), threading.Lock(), []
    openai_clients = [client(url) for _ in range(clients)]

    def worker(n: int) -> None:
        while True:
            with lock:
                if not queue:
                    return
                model, question = queue.pop(0)
            record = ask(openai_clients[n], model, question) | {"client": n}
            with lock:
                records.append(record)

    wall = run_together(clients, worker)
    for c in openai_clients:
        c.close()
    return records, wall


# --- docs/benchmarks.md -------------------------------------------------------------------
def markdown(result: dict[str, Any]) -> str:
    s, f = result["server"], result["floor"]
    configs = {("weights repacked for this CPU" if a.get("extra_buffers")
                else "weights as stored (the repacked ones disagreed)")
               + f", logits r={a.get('logits_correlation')} against the reference"
               for a in f.get("threads", {}).values()}
    lines = [
        f"{result['questions']} demo questions per mode through `/v1` of a real `assistant "
        f"serve` (default settings; {s.get('engine') or 'engine not logged'}), streamed with "
        "the `openai` client, one at a time. Floor: plain llama.cpp "
        f"{f.get('llama_cpp', '')} in its own process, same GGUF "
        f"({'; '.join(sorted(configs)) or f.get('error')}: what the app's logits check "
        "chooses), reading a prompt of the answer's token count and writing its number of "
        "tokens, right after the answer; the faster of 1 and 2 threads.", "",
        "| mode | prompt tokens | answer tokens | first text | answer | floor | x floor "
        f"(median) | before generation | <= {result['target_ratio']}x |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for mode, m in result["modes"].items():
        lines.append(
            f"| {mode} | {_n(m['prompt_tokens'])} | {_n(m['completion_tokens'])} | "
            f"{_s(m['ttft_s'])} | {_s(m['total_s'])} | {_s(m['floor_s'])} | "
            f"{_x(m['ratio'])} | {_pct(m['before_generation_share'])} | "
            f"{'yes' if m['meets'] else '**no**'} |")
    lines += ["", "Prompt and layered answers reach the client in one piece at the end (the "
              "answer check may replace them), so their first text is the whole answer. "
              "\"Before generation\": retrieval, ranking and the re-ranker's reading (median "
              + ", ".join(f"{_n(m['rerank_tokens'])} tokens in {mode}"
                          for mode, m in result["modes"].items() if m["rerank_tokens"])
              + "), as a share of the answer time."]
    lines += _concurrency(result["concurrency"])
    rss = s.get("rss_mb", {})
    load = result["load_average"]
    lines += ["", f"Server RSS {rss.get('after_warmup_mb', 0):.0f} MB after the warm-up "
              f"(both adapters used), {rss.get('after_run_mb', 0):.0f} MB after the run, peak "
              f"{rss.get('peak_mb', 0):.0f} MB. Load average {load['start'][0]} at the start, "
              f"{load['end'][0]} at the end ({load['cores']} cores)."
              + (f" Note: {result['note']}." if result.get("note") else "")]
    return "\n".join(lines)


def _concurrency(c: dict[str, Any]) -> list[str]:
    if not c.get("levels"):
        return []
    serial = c["serial"]
    lines = ["", f"Concurrent clients, requests mixed over {', '.join(f'`{m}`' for m in c['mix'])}"
             f" ({c['rounds']} per client), against the same questions asked serially:", "",
             "| clients | requests | answer tokens/s | x serial | p50 | p95 | same text as "
             "serial | errors |", "|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| 1 (serial) | {serial['requests']} | {serial['tokens_per_s']} | 1.0x | "
             f"{_s(serial['p50_s'])} | {_s(serial['p95_s'])} | - | {serial['errors']} |"]
    for level, m in c["levels"].items():
        lines.append(f"| {level} | {m['requests']} | {m['tokens_per_s']} | {_x(m['speedup'])} | "
                     f"{_s(m['p50_s'])} | {_s(m['p95_s'])} | {m['same_text_as_serial']} of "
                     f"{m['requests'] - m['errors']} | {m['errors']} |")
    at = c["levels"].get(str(c["target_clients"]))
    if at is not None:
        met = at["speedup"] is not None and at["speedup"] >= c["target_speedup"]
        lines += ["", f"Target: {c['target_clients']} clients >= {c['target_speedup']}x serial "
                  f"answer tokens/s: {_x(at['speedup'])}, {'met' if met else '**missed**'}."]
    return lines


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
