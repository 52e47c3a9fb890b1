"""`assistant serve` stops cleanly on SIGTERM, as Docker, Spaces and Kubernetes stop it:
in the middle of a streamed /v1 answer, with a browser's heartbeat stream and an idle
keep-alive connection open, it exits within 10 s with status 0, the answer's ledger row
says cancelled, and a restart on the same data folder finds the ledger and the knowledge
base intact; the restarted one stops as cleanly on SIGINT (Ctrl+C) mid-stream. The real
entry point in a subprocess, on the bundled model (bf16: it loads in a quarter of NF4's
time, and the precision is not what is tested) and embedder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT, demo_knowledge
from tests.servers import free_port, wait_ready

STOP_LIMIT_S = 10.0  # what a container platform waits between SIGTERM and SIGKILL
READY_TIMEOUT_S = 300  # model, embedder and one document on 2 busy cores
STORY = "Write a long, detailed story about a reservoir keeper and her many years of work."


class Serve:
    """One `assistant serve` subprocess on 127.0.0.1; ``stop`` sends SIGTERM and times it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("a") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "assistant.cli", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port)], cwd=ROOT, env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self) -> None:
        wait_ready(self.process, f"{self.url}/v1/models", self.log, READY_TIMEOUT_S, "serve")

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int | None, float]:
        """Send ``sig``; (exit status, seconds to exit), or (None, ...) past the limit."""
        started = time.monotonic()
        self.process.send_signal(sig)
        try:
            code = self.process.wait(STOP_LIMIT_S + 5)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def tail(self) -> str:
        return self.log.read_text()[-4000:]


@pytest.fixture
def serve_env(tmp_path):
    knowledge = tmp_path / "knowledge"
    demo_knowledge(knowledge)
    return {**os.environ, "HF_HUB_OFFLINE": "1", "ASSISTANT_DATA_DIR": str(tmp_path / "data"),
            "ASSISTANT_KNOWLEDGE_DIR": str(knowledge), "ASSISTANT_QUANT": "bf16",
            "GRADIO_ANALYTICS_ENABLED": "False"}


@pytest.fixture
def start(serve_env, tmp_path):
    """Starts `assistant serve` processes; any still running at the end are killed."""
    started: list[Serve] = []

    def start() -> Serve:
        server = Serve(serve_env, tmp_path / "serve.log")
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.kill()


def open_browser_connections(url: str) -> list[httpx.Client]:
    """What an open browser tab holds: Gradio's heartbeat event stream, and an idle
    keep-alive connection that fetched the page."""
    idle = httpx.Client(timeout=30)
    assert idle.get(f"{url}/").status_code == 200
    heartbeat = httpx.Client(timeout=None)
    opened = threading.Event()

    def listen() -> None:
        try:
            with heartbeat.stream("GET", f"{url}/gradio_api/heartbeat/e2e-stop-test") as r:
                opened.set()
                for _ in r.iter_bytes():
                    pass
        except httpx.HTTPError:
            pass
        opened.set()

    threading.Thread(target=listen, daemon=True).start()
    assert opened.wait(10)
    return [idle, heartbeat]


def stop_mid_stream(server: Serve, sig: int) -> tuple[int | None, float]:
    """Start a long streamed answer, send ``sig`` after its fourth chunk; (status, seconds)."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="strata-base", max_tokens=1500, temperature=0, stream=True,
        messages=[{"role": "user", "content": STORY}])
    chunks, errors, stopped = 0, [], None
    try:
        for _ in stream:
            chunks += 1
            if chunks == 4:
                stopped = server.stop(sig)
                break
    except Exception as exc:  # noqa: BLE001 - the stream may end with the server's error
        errors.append(exc)
    assert stopped is not None, f"the answer ended before the signal ({errors}):\n{server.tail()}"
    return stopped


def ask(server: Serve, question: str) -> dict:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model="strata-prompt", max_tokens=16, temperature=0,
                                           messages=[{"role": "user", "content": question}])
    assert reply.choices[0].message.content
    return reply.model_extra["strata"]


def ledger_rows(data: Path) -> list[dict]:
    from assistant.ledger.store import Ledger

    ledger = Ledger(data / "ledger.db")
    try:
        return ledger.rows()
    finally:
        ledger.close()


def test_a_stop_signal_during_a_streamed_answer_exits_cleanly_and_loses_nothing(start,
                                                                                tmp_path):
    server = start()
    clients = open_browser_connections(server.url)
    ask(server, "When does the Kestle Top car park open?")  # one finished answer
    code, took = stop_mid_stream(server, signal.SIGTERM)
    for client in clients:
        client.close()
    assert code == 0 and took < STOP_LIMIT_S, f"exit {code} after {took:.1f} s:\n{server.tail()}"
    rows = ledger_rows(tmp_path / "data")
    assert [r["error"] for r in rows] == [None, "cancelled: the server is stopping"], rows
    assert rows[1]["question"] == STORY

    again = start()  # the same data folder: ledger and knowledge base as they were left
    sources = [s["name"] for s in ask(again, "How much is a fishing permit?")["sources"]]
    assert "reservoir-rules.md" in sources
    code, took = stop_mid_stream(again, signal.SIGINT)  # Ctrl+C in a terminal
    assert code == 0 and took < STOP_LIMIT_S, f"exit {code} after {took:.1f} s:\n{again.tail()}"
    log = again.tail()
    assert "generator already executing" not in log and "Traceback" not in log, log
    errors = [r["error"] for r in ledger_rows(tmp_path / "data")]
    assert errors == [None, "cancelled: the server is stopping", None,
                      "cancelled: the server is stopping"]


def test_a_stop_signal_during_training_interrupts_it_and_writes_no_adapter(start, serve_env,
                                                                           tmp_path):
    """A training run started in the web app (the run's thread is in torch at the signal)."""
    from gradio_client import Client, handle_file

    adapters = tmp_path / "adapters"
    serve_env["ASSISTANT_ADAPTERS_DIR"] = str(adapters)  # never the repository's adapters/
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(
        f'{{"question": "What is rule {i} of the reservoir?", "answer": "Rule {i} is to '
        f'keep dogs on a lead near the water, section {i}."}}\n' for i in range(40)))
    server = start()
    job = Client(server.url, verbose=False).submit(
        "stopped-mid-run", handle_file(str(pairs)), 3, False, api_name="/train_adapter")
    deadline = time.monotonic() + 60
    while not job.outputs() and time.monotonic() < deadline:
        time.sleep(0.5)  # the job's first update: the run has started
    assert "Training **stopped-mid-run**" in str(job.outputs()[-1]), job.outputs()
    time.sleep(5)  # into the base model's loading and its first steps
    code, took = server.stop(signal.SIGTERM)
    assert code == 0 and took < STOP_LIMIT_S, f"exit {code} after {took:.1f} s:\n{server.tail()}"
    log = server.tail()
    assert "training stopped-mid-run: interrupted at step" in log and "Traceback" not in log, log
    assert not (adapters / "stopped-mid-run").exists()
    from assistant.ledger.store import Ledger

    ledger = Ledger(tmp_path / "data" / "ledger.db")  # what the next start finds
    (run,) = ledger.trainings("stopped-mid-run")
    ledger.close()
    assert run["state"] == "interrupted" and run["seconds"] > 0, run
