"""Soak: a real `assistant serve` under a bounded mix of good and bad requests.

Starts `assistant serve` as a subprocess (127.0.0.1, a free port, its own temporary data
directory, the bundled default base model, the repository's demo adapter and knowledge;
answers capped at MAX_TOKENS so the run stays short on two cores) and, after a serial
warm-up of every kind of answer, sends REQUESTS requests from CLIENTS concurrent clients:

- the OpenAI-compatible API through the official ``openai`` client: every mode model and
  the demo adapter's model, whole and streamed;
- the web app through ``gradio_client``: the chat endpoint in every mode and an upload
  through the knowledge endpoint;
- bad inputs: an empty question, an unknown model, wrong types, malformed JSON, a lone
  UTF-16 surrogate and a 10-million-character question (API), an empty question in the
  web chat, a corrupt file and a small .docx of 115 MB of XML through the upload.

Each request ends ``ok`` (answered, or a bad input refused with the status expected of
it), ``queue_full`` (429 / the web app's 'busy': a refusal the bounded queue is meant to
give under load) or ``unexpected`` (5xx, an exception, a bad input accepted, a good one
refused). The result holds those counts by kind, p50/p95 latency per kind of request,
and the server's RSS (VmRSS of its process) after start, after the warm-up, during and
after the run, and its peak over its life (VmHWM: what the worst input cost): growth
after the warm-up, when the model's working set is in place, is what a leak would show.
The server is always stopped. `python -m bench.run soak`.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.soak_clients import ADAPTER, MAX_TOKENS, ROOT, Clients, Sampler, Server

REQUESTS, CLIENTS = 200, 16
QUICK_REQUESTS, QUICK_CLIENTS = 40, 8
API_MODELS = ["strata", "strata-prompt", "strata-layered", "strata-base", ADAPTER]
WEB_MODES = ["auto", "prompt", "adapter", "layered", "base"]
DEADLINE_S = 2400  # requests not started by then are reported as skipped
# kind -> (share of REQUESTS, statuses that count as the right refusal; None = must answer)
MIX: dict[str, tuple[int, tuple[int, ...] | None]] = {
    **{f"api {m}": (9, None) for m in API_MODELS},
    **{f"api {m} stream": (9, None) for m in API_MODELS},
    **{f"web chat {mode}": (8, None) for mode in WEB_MODES},
    "web upload": (10, None),
    "bad: api empty question": (7, (400,)),
    "bad: api unknown model": (7, (404,)),
    "bad: api wrong types": (7, (400,)),
    "bad: api malformed JSON": (7, (400,)),
    "bad: api lone surrogate": (6, (400,)),  # "\ud800" in a message (issue 28)
    "bad: api 10 MB question": (6, (400,)),  # refused, and stored at most to the limit
    "bad: web empty question": (7, (0,)),  # 0: the web app's own refusal (gr.Error)
    "bad: web corrupt upload": (7, (0,)),
    "bad: web small-zip docx": (6, (0,)),  # 0.3 MB packed, 115 MB of XML: refused unparsed
}


# --- the plan and the report (pure: tests/unit/test_bench_soak.py) -----------------------------
def schedule(count: int, seed: int = 0) -> list[str]:
    """``count`` request kinds in the MIX's proportions, shuffled reproducibly."""
    total = sum(share for share, _ in MIX.values())
    kinds = [k for k, (share, _) in MIX.items() for _ in range(math.ceil(share * count / total))]
    random.Random(seed).shuffle(kinds)
    return kinds[:count]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def classify(kind: str, accepted: bool, status: int | None, detail: str = "") -> tuple[str, str]:
    """(outcome, label) of one request of ``kind``: ``accepted`` whether it was answered,
    ``status`` the HTTP status of a refusal (0: the web app's own refusal; None: none)."""
    expected = MIX[kind][1]
    if status == 429 or "queue_full" in detail:
        return "queue_full", "HTTP 429" if status == 429 else detail
    if accepted:
        return ("ok", "answered") if expected is None else ("unexpected", "bad input accepted")
    label = detail or (f"HTTP {status}" if status else "web refusal")
    if status is None or status >= 500:
        return "unexpected", label
    if expected is None:
        return "unexpected", f"good input refused: {label}"
    if status not in expected:
        return "unexpected", f"wrong refusal: {label}"
    return "ok", label


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts by outcome and label, and latency per kind of request (ok outcomes only:
    queue-full refusals are fast and failures are not what a user waits for)."""
    by_kind: dict[str, dict[str, Any]] = defaultdict(lambda: Counter())
    times: dict[str, list[float]] = defaultdict(list)
    labels: dict[str, Counter[str]] = {"expected_refusals": Counter(), "queue_full": Counter(),
                                       "unexpected": Counter()}
    for r in records:
        by_kind[r["kind"]][r["outcome"]] += 1
        if r["outcome"] == "ok":
            times[r["kind"]].append(r["seconds"] * 1000)
            if MIX[r["kind"]][1] is not None:
                labels["expected_refusals"][r["label"]] += 1
        elif r["outcome"] in labels:
            labels[r["outcome"]][r["label"]] += 1
    kinds = {}
    for kind in sorted(by_kind, key=list(MIX).index):
        counts, ms = by_kind[kind], times[kind]
        kinds[kind] = {"count": sum(counts.values()), "ok": counts["ok"],
                       "queue_full": counts["queue_full"], "unexpected": counts["unexpected"],
                       "skipped": counts["skipped"], "p50_ms": _round(percentile(ms, 0.5)),
                       "p95_ms": _round(percentile(ms, 0.95))}
    outcomes = Counter(r["outcome"] for r in records)
    answered = sum(1 for r in records if r["outcome"] == "ok" and MIX[r["kind"]][1] is None)
    return {"requests": len(records), "answered": answered,
            "refused_as_expected": sum(labels["expected_refusals"].values()),
            "queue_full": outcomes["queue_full"], "unexpected": outcomes["unexpected"],
            "skipped": outcomes["skipped"],
            "errors": {name: dict(sorted(c.items())) for name, c in labels.items()},
            "kinds": kinds}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def rss_growth(rss: dict[str, float]) -> dict[str, float]:
    """MB and per cent the server grew from after the warm-up to after the run."""
    grew = rss["after_run_mb"] - rss["after_warmup_mb"]
    return {"growth_after_warmup_mb": round(grew, 1),
            "growth_after_warmup_pct": round(100 * grew / rss["after_warmup_mb"], 1)}


def rss_by_progress(samples: list[tuple[int, float]], total: int) -> dict[str, float]:
    """The RSS when a quarter, half, three quarters and all of the ``total`` requests were
    done, from (requests done, MB) samples: a working set levels off, a leak keeps rising."""
    marks = {}
    for share in (25, 50, 75, 100):
        reached = [mb for done, mb in samples if done * 100 >= share * total]
        if reached:
            marks[f"{share}%"] = reached[0]
    return marks


def server_exceptions(log: str, limit: int = 8) -> dict[str, Any]:
    """Tracebacks in the server's log up to the end of the run: how many, and their
    exception lines (distinct). Gradio logs every gr.Error (a refusal shown to the visitor,
    such as 'Type a question first.') with a traceback: those are counted apart."""
    lines, found, refusals = log.splitlines(), [], 0
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            tail = next((ln for ln in lines[i + 1:] if ln and not ln[0].isspace()), "?")
            if tail.startswith("gradio.exceptions.Error"):
                refusals += 1
            else:
                found.append(tail[:200])
    return {"tracebacks": len(found), "exceptions": list(dict.fromkeys(found))[:limit],
            "web_refusals_logged": refusals}


def warm_up(visitors: list[Clients]) -> float:
    """One of each kind of answer serially (every code path loaded), then one answer per
    client at once (a full batch's working set), so that what the soak adds is growth."""
    started = time.perf_counter()
    kinds = [*(f"api {m}" for m in API_MODELS), "api strata stream",
             *(f"web chat {mode}" for mode in WEB_MODES), "web upload"]
    for n, kind in enumerate(kinds):
        outcome, label = classify(kind, *visitors[0].send(kind, 1000 + n))
        if outcome != "ok":
            raise RuntimeError(f"warm-up request {kind!r} failed: {label}")
    burst = drive(visitors, [kinds[n % (len(kinds) - 1)] for n in range(len(visitors))],
                  first=2000)
    failed = [r for r in burst if r["outcome"] != "ok"]
    if failed:
        raise RuntimeError(f"warm-up burst: {len(failed)} failed, e.g. {failed[0]}")
    return time.perf_counter() - started


def drive(visitors: list[Clients], kinds: list[str], first: int = 0,
          records: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Send ``kinds`` (numbered from ``first``) from one thread per visitor, each as soon
    as its previous request ended; the records, in order (also appended to ``records``
    as they come, for the sampler)."""
    work = list(enumerate(kinds, start=first))
    lock, records = threading.Lock(), [] if records is None else records
    deadline = time.perf_counter() + DEADLINE_S

    def worker(visitor: Clients) -> None:
        while True:
            with lock:
                if not work:
                    return
                n, kind = work.pop(0)
            started = time.perf_counter()
            outcome, label = (("skipped", "deadline") if started > deadline
                              else classify(kind, *visitor.send(kind, n)))
            record = {"n": n, "kind": kind, "outcome": outcome, "label": label,
                      "seconds": round(time.perf_counter() - started, 4)}
            with lock:
                records.append(record)

    threads = [threading.Thread(target=worker, args=(v,), name=f"soak-client-{i}")
               for i, v in enumerate(visitors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(records, key=lambda r: r["n"])


def run(quick: bool = False) -> dict[str, Any]:
    count, clients = (QUICK_REQUESTS, QUICK_CLIENTS) if quick else (REQUESTS, CLIENTS)
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    server = Server(tmp)
    load_start = [round(x, 2) for x in os.getloadavg()]
    try:
        measured = _soak(server, tmp, count, clients)
    except Exception as exc:
        raise RuntimeError(f"soak failed; the server's log is kept: {server.log_path}") from exc
    finally:
        server.stop()  # also when a step above failed
    load_end = [round(x, 2) for x in os.getloadavg()]
    rss = measured.pop("rss")
    result = {
        "requests": count, "clients": clients, "max_tokens": MAX_TOKENS,
        "server": {"command": "assistant serve --host 127.0.0.1 --port PORT",
                   "base_model": server.setting("base_model"), "engine": server.engine(),
                   "adapter": ADAPTER, "max_batch": server.setting("max_batch"),
                   "max_queue": server.setting("max_queue"),
                   "ready_s": measured.pop("ready_s"), "warmup_s": measured.pop("warmup_s"),
                   "ledger_rows_added": measured.pop("ledger_rows_added"),
                   **server_exceptions(measured.pop("log"))},
        "run_s": measured.pop("run_s"), **summarize(measured["records"]),
        "rss": {**rss, **rss_growth(rss)},
        "load_average": {"start": load_start, "end": load_end},
        "records": measured["records"],
    }
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def _soak(server: Server, tmp: Path, count: int, clients: int) -> dict[str, Any]:
    """Start the server, warm it up, drive the soak; timings, records and RSS."""
    files = tmp / "files"
    files.mkdir()
    questions = [row["question"] for row in map(json.loads, (
        ROOT / "knowledge" / ADAPTER / "qa" / "test.jsonl").read_text().splitlines())
        if not row.get("out_of_scope")]
    ready_s = server.start()
    rss: dict[str, Any] = {"after_start_mb": server.rss()["VmRSS"]}
    visitors = [Clients(server.url, files, questions) for _ in range(clients)]
    try:
        warmup_s = warm_up(visitors)
        rss["after_warmup_mb"] = server.rss()["VmRSS"]
        rows_before = _ledger_rows(tmp / "data" / "ledger.db")
        done: list[dict[str, Any]] = []
        sampler = Sampler(server, lambda: len(done))
        sampler.start()
        started = time.perf_counter()
        records = drive(visitors, schedule(count), records=done)
        run_s = time.perf_counter() - started
        sampler.done.set()
    finally:
        for visitor in visitors:
            visitor.close()
    time.sleep(2)  # the last answers' buffers go
    after = server.rss()
    rows_after = _ledger_rows(tmp / "data" / "ledger.db")  # while it runs: WAL included
    samples = [*sampler.samples, (count, after["VmRSS"])]
    rss.update(after_run_mb=after["VmRSS"], peak_during_run_mb=max(mb for _, mb in samples),
               peak_lifetime_mb=after["VmHWM"], by_progress=rss_by_progress(samples, count))
    return {"ready_s": round(ready_s, 1), "warmup_s": round(warmup_s, 1),
            "run_s": round(run_s, 1), "records": records, "rss": rss, "log": server.log(),
            "ledger_rows_added": None if rows_before is None or rows_after is None
            else rows_after - rows_before}


def _ledger_rows(path: Path) -> int | None:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    except sqlite3.Error:
        return None


# --- docs/benchmarks.md --------------------------------------------------------------------
def markdown(result: dict[str, Any]) -> str:
    s, rss, errors = result["server"], result["rss"], result["errors"]
    uploads = result["kinds"].get("web upload", {}).get("ok", 0)  # accepted, but no answer
    lines = [
        f"{result['requests']} requests from {result['clients']} concurrent clients against a "
        f"real `assistant serve` (bundled base model, demo adapter `{s['adapter']}`, max_batch "
        f"{s['max_batch']}, max_queue {s['max_queue']}; answers capped at {result['max_tokens']} "
        f"tokens) in {result['run_s'] / 60:.1f} min: {result['answered']} answered ({uploads} of "
        f"them uploads), "
        f"{result['refused_as_expected']} bad inputs refused as expected, "
        f"{result['queue_full']} queue-full refusals, **{result['unexpected']} unexpected "
        f"errors**" + (f", {result['skipped']} skipped at the deadline" if result["skipped"]
                       else "") + ".", "",
        "| request | sent | as expected | queue full | unexpected | p50 | p95 |",
        "|---|---:|---:|---:|---:|---:|---:|"]
    for kind, k in result["kinds"].items():
        p50, p95 = (f"{v / 1000:.2f} s" if v is not None else "-"
                    for v in (k["p50_ms"], k["p95_ms"]))
        lines.append(f"| {kind} | {k['count']} | {k['ok']} | {k['queue_full']} | "
                     f"{k['unexpected']} | {p50} | {p95} |")
    lines += ["", "Errors by kind: expected refusals " + _counts(errors["expected_refusals"])
              + "; queue full " + _counts(errors["queue_full"]) + "; unexpected "
              + _counts(errors["unexpected"]) + f". Server log: {s['tracebacks']} tracebacks"
              + (f" ({'; '.join(s['exceptions'])})" if s["exceptions"] else "")
              + f" besides the {s['web_refusals_logged']} web refusals Gradio logs with one. "
              f"Ledger rows added during the run: {s.get('ledger_rows_added')} (one per answer: "
              f"{result['answered'] - uploads}).",
              "",
              f"Server RSS: {rss['after_start_mb']:.0f} MB after start (model loaded, demo "
              f"documents in), {rss['after_warmup_mb']:.0f} MB after a warm-up of every kind of "
              f"answer, {rss['after_run_mb']:.0f} MB after the run: "
              f"{rss['growth_after_warmup_mb']:+.0f} MB ({rss['growth_after_warmup_pct']:+.1f}%) "
              f"over the {result['requests']} requests (at 25/50/75/100% of them: "
              f"{' / '.join(f'{mb:.0f}' for mb in rss['by_progress'].values())} MB); peak "
              f"{rss['peak_during_run_mb']:.0f} MB sampled during the run"
              + _lifetime_peak(rss) + ". Load average (1, 5, 15 min) "
              f"{', '.join(map(str, result['load_average']['start']))} at the start, "
              f"{', '.join(map(str, result['load_average']['end']))} at the end "
              "(the clients run on the same two cores)."]
    return "\n".join(lines)


def _lifetime_peak(rss: dict[str, Any]) -> str:
    """The server's peak memory over its life (VmHWM): the cost of its worst input."""
    peak = rss.get("peak_lifetime_mb")
    return "" if peak is None else (f", {peak:.0f} MB at most over the server's life "
                                    "(VmHWM, every bad input included)")


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{label} x{n}" for label, n in counter.items()) or "none"
