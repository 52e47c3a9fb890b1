"""The many-users deployment as it runs: `assistant serve` started as a subprocess with the
environment deploy/compose.yaml gives the `strata` service (read from the file, so the two
cannot drift), on the scale tier's real vLLM server and real `chroma run`, driven by the
official `openai` client and, for an upload and a training run, by `gradio_client` (the
adapter trained in the app is then answered by vLLM). A second `assistant serve`,
started with the environment of the "by hand" block of docs/scaling.md, answers from that
upload through the shared Chroma server.

The compose file names the other services by their hostnames (vllm:8000, chroma:8000) and
the shared volume's folders (/data/...), the docs block its ports on 127.0.0.1 (8000, 8001):
they are mapped to this test's servers and folders, as the Dockerfile's CMD maps the data
folders when /data is mounted. Each process gets a data folder of its own.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import yaml

from tests.scale.conftest import DEMO, ROOT, free_port

pytestmark = pytest.mark.scale

READY_TIMEOUT_S = 300  # the embedder and the demo documents on 2 busy cores
MODELS = {"strata": None, "strata-prompt": "prompt", "strata-layered": "layered",
          "strata-base": "base", DEMO: "adapter"}
UPLOAD = ("# Brackenfold lido\n\n## Tickets\n\nA swim at the Brackenfold lido costs 3.40 "
          "pounds before nine in the morning.\n")


def by_hand_environment(vllm_url: str, chroma_url: str) -> dict[str, str]:
    """The ASSISTANT_* assignments before `assistant serve` in docs/scaling.md's by-hand
    block, its 127.0.0.1 ports (vLLM's 8000, Chroma's 8001) mapped to this test's."""
    doc = (ROOT / "docs" / "scaling.md").read_text()
    block = doc[doc.index("Without Docker, the same by hand"):]
    block = block[block.index("```bash"):block.index("```", block.index("```bash") + 7)]
    command = block[block.rindex("&\n") + 2:]  # the last command: after the servers' `&`
    assert command.rstrip().endswith("assistant serve"), command
    env = dict(re.findall(r"(ASSISTANT_\w+)=(\S+)", command))
    ports = {"127.0.0.1:8000": urlparse(vllm_url).netloc,
             "127.0.0.1:8001": urlparse(chroma_url).netloc}
    for documented, real in ports.items():
        env = {key: value.replace(documented, real) for key, value in env.items()}
    assert env["ASSISTANT_BACKEND"] == "openai" and len(env) >= 4, env
    return env


def compose_environment(vllm_url: str, chroma_url: str, adapters: Path) -> dict[str, str]:
    """The `strata` service's environment, its hostnames and /data folders mapped here."""
    services = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"]
    env = {k: str(v) for k, v in services["strata"]["environment"].items()}
    hosts = {"vllm:8000": urlparse(vllm_url).netloc, "chroma:8000": urlparse(chroma_url).netloc}
    mapped = {}
    for key, value in env.items():
        for name, real in hosts.items():
            value = value.replace(f"//{name}", f"//{real}")
        mapped[key] = value.replace("/data/adapters", str(adapters))
    assert mapped["ASSISTANT_BACKEND"] == "openai"  # what this test is about
    return mapped


def start_serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "assistant.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    return process, f"http://127.0.0.1:{port}"


def stop(process: subprocess.Popen) -> int | None:
    """SIGTERM, as a container platform stops it; SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            return None
    return process.returncode


@pytest.fixture(scope="module")
def deployed(vllm_server, chroma_server, tmp_path_factory):
    """`assistant serve` as compose starts it; stopped with SIGTERM, killed if it lingers."""
    data = tmp_path_factory.mktemp("strata-deployed")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           **compose_environment(vllm_server.url, chroma_server.url, vllm_server.adapters_dir),
           # what the Dockerfile's CMD sets when /data is mounted
           "ASSISTANT_DATA_DIR": str(data / "strata"),
           "ASSISTANT_ADAPTERS_DIR": str(vllm_server.adapters_dir),
           "ASSISTANT_TRAIN_MAX_STEPS": "2"}  # an adapter trained in the app: in a minute
    log = data / "serve.log"
    process, url = start_serve(env, log)
    try:
        _wait_ready(process, url, log)
        yield url, log
    finally:
        assert stop(process) == 0, log.read_text()[-3000:]


def _wait_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}:\n"
                                 f"{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise AssertionError(f"serve not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


def test_every_mode_answers_through_the_deployed_entry_point(deployed):
    from openai import OpenAI

    url, log = deployed
    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    served = {m.id for m in client.models.list()}
    assert set(MODELS) <= served, served
    for model, mode in MODELS.items():
        reply = client.chat.completions.create(
            model=model, max_tokens=24, temperature=0,
            messages=[{"role": "user", "content": "How much is the new connection fee?"}])
        strata = reply.model_extra["strata"]
        assert reply.choices[0].message.content and reply.usage.completion_tokens > 0, model
        assert mode is None or strata["mode"] == mode, (model, strata)
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="strata-base", max_tokens=16, temperature=0, stream=True,
        messages=[{"role": "user", "content": "Say hello."}]) if c.choices]
    assert "".join(pieces).strip()
    assert "Traceback" not in log.read_text()


def test_an_adapter_trained_in_the_web_app_is_answered_by_vllm(deployed, vllm_server,
                                                               tmp_path):
    from gradio_client import Client, handle_file
    from openai import OpenAI

    url, log = deployed
    pairs = tmp_path / "pairs.jsonl"
    lines = (ROOT / "knowledge" / DEMO / "qa" / "train.jsonl").read_text().splitlines()
    pairs.write_text("\n".join(lines[:16]) + "\n")
    job = Client(url, verbose=False).submit("trained-in-app", handle_file(str(pairs)), 1, False,
                                            api_name="/train_adapter")
    status, _ = job.result(timeout=600)  # the last update: how the run ended
    assert "Trained **trained-in-app**" in status, (status, log.read_text()[-3000:])
    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    assert "trained-in-app" in {m.id for m in client.models.list()}
    reply = client.chat.completions.create(
        model="trained-in-app", max_tokens=16, temperature=0,
        messages=[{"role": "user", "content": "How much is the new connection fee?"}])
    assert reply.choices[0].message.content
    assert reply.model_extra["strata"]["adapter"] == "trained-in-app"
    served = httpx.get(f"{vllm_server.url}/models").json()["data"]
    assert "trained-in-app" in {m["id"] for m in served}  # loaded into vLLM at run time


def test_an_upload_through_the_web_app_is_answered_from_by_the_by_hand_process(
        deployed, vllm_server, chroma_server, tmp_path):
    from gradio_client import Client, handle_file
    from openai import OpenAI

    url, _ = deployed
    doc = tmp_path / "brackenfold-lido.md"
    doc.write_text(UPLOAD)
    Client(url, verbose=False).predict([handle_file(str(doc))], "leisure", api_name="/upload")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           **by_hand_environment(vllm_server.url, chroma_server.url),
           "ASSISTANT_DATA_DIR": str(tmp_path / "by-hand")}  # not the repository's ./data
    process, other = start_serve(env, tmp_path / "by-hand.log")
    try:
        _wait_ready(process, other, tmp_path / "by-hand.log")
        client = OpenAI(base_url=f"{other}/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="strata-prompt", max_tokens=24, temperature=0,
            messages=[{"role": "user", "content": "How much is a swim at the Brackenfold "
                                                  "lido before nine?"}])
        sources = [s["name"] for s in reply.model_extra["strata"]["sources"]]
        assert "brackenfold-lido.md" in sources, reply.model_extra["strata"]
    finally:
        assert stop(process) == 0, (tmp_path / "by-hand.log").read_text()[-3000:]
