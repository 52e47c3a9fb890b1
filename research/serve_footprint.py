"""What `assistant serve` holds in memory, and what one prompt-mode re-rank costs.

Question (issue 31, item 3): with the default engine (llama.cpp), does the served app still
load the local torch model, and what do its memory and its re-ranking cost? Two parts:

- ``serve``: start `assistant serve` as `make run` does (fresh data folder, the bundled
  adapters), load the demo adapter with the Adapters tab's button, answer one question
  per mode through /v1, and read the server's peak resident memory (VmHWM) and whether
  it imported torch's model classes (``/proc/PID/maps`` lists the torch library once torch
  is imported).
- ``rerank``: in process, on the default settings, the time of the re-ranking step
  (``Pipeline.rank``'s scorer call) over prompt-mode answers to demo questions.

Run: ``.venv/bin/python -m research.serve_footprint [serve|rerank|both] --out FILE``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from research import emit

QUESTIONS = ["How much is the new connection fee?", "When was the cooperative founded?",
             "What is the late payment fee?", "How do I report a leak?",
             "Who chairs the board?"]
MODELS = {"prompt": "strata-prompt", "adapter": "harrowgate-water",
          "layered": "strata-layered", "base": "strata-base"}
ADAPTER = "harrowgate-water"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) // 1024
    return out


def _torch_loaded(pid: int) -> bool:
    return "libtorch_cpu" in Path(f"/proc/{pid}/maps").read_text()


def measure_serve() -> dict[str, Any]:
    import httpx

    port = _free_port()
    data = Path(tempfile.mkdtemp(prefix="strata-footprint-"))
    env = dict(os.environ, ASSISTANT_DATA_DIR=str(data), HF_HUB_OFFLINE="1",
               OMP_WAIT_POLICY="PASSIVE")
    command = [sys.executable, "-m", "assistant.cli", "serve", "--host", "127.0.0.1",
               "--port", str(port)]
    started = time.perf_counter()
    with open(data / "serve.log", "w") as log:
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    result: dict[str, Any] = {"command": " ".join(command[1:])}
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=300) as http:
            while True:
                if server.poll() is not None:
                    raise SystemExit((data / "serve.log").read_text()[-3000:])
                try:
                    if http.get("/v1/models").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(1)
            result["ready_s"] = round(time.perf_counter() - started, 1)
            result["ready"] = _status(server.pid)
            result["adapter_button"] = _press_load(url)
            result["after_load"] = _status(server.pid)
            answers = {}
            for mode, model in MODELS.items():
                body = {"model": model, "max_tokens": 32, "temperature": 0,
                        "messages": [{"role": "user", "content": QUESTIONS[0]}]}
                t0 = time.perf_counter()
                reply = http.post("/v1/chat/completions", json=body)
                reply.raise_for_status()
                answers[mode] = {"seconds": round(time.perf_counter() - t0, 2),
                                 "rss": _status(server.pid)}
            result["answers"] = answers
            result["peak_rss_mib"] = _status(server.pid)["VmHWM"]
            result["torch_library_mapped"] = _torch_loaded(server.pid)
    finally:
        server.terminate()
        server.wait(60)
    return result


def _press_load(url: str) -> str:
    """The Adapters tab's Load button, through Gradio's API (``api_name="load_adapter"``)."""
    try:
        from gradio_client import Client

        return str(Client(url, verbose=False).predict(ADAPTER, api_name="/load_adapter"))[:200]
    except Exception as exc:  # noqa: BLE001 - reported, the answers still load it
        return f"not pressed: {exc}"[:200]


def measure_rerank() -> dict[str, Any]:
    from assistant.answering import pipeline as pipeline_module
    from assistant.retrieval.ingest import ensure_demo_knowledge
    from assistant.services import Services
    from assistant.settings import Settings

    data = Path(tempfile.mkdtemp(prefix="strata-rerank-"))
    services = Services(Settings(data_dir=data))
    ensure_demo_knowledge(services.settings, services.store)
    pipeline = services.pipeline
    times: list[float] = []
    original = pipeline_module.rerank.rerank

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            times.append((time.perf_counter() - t0) * 1000)

    pipeline_module.rerank.rerank = timed
    try:
        pipeline.ask("warm up: what is the connection fee?", mode="prompt")
        times.clear()
        for question in QUESTIONS:
            pipeline.ask(question, mode="prompt")
    finally:
        pipeline_module.rerank.rerank = original
    return {"engine": services.engine.engine, "reranker": type(services.reranker).__name__,
            "torch_model_loaded": getattr(services.base, "model", None) is not None,
            "rerank_ms": [round(t, 1) for t in times],
            "rerank_ms_median": round(statistics.median(times), 1),
            "peak_rss_mib": _status(os.getpid())["VmHWM"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", nargs="?", default="both", choices=["serve", "rerank", "both"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"command": "python -m research.serve_footprint "
                              + " ".join(argv if argv is not None else sys.argv[1:])}
    if args.part in ("serve", "both"):
        result["serve"] = measure_serve()
    if args.part in ("rerank", "both"):
        result["rerank"] = measure_rerank()
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
