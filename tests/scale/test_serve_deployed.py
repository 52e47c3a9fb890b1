"""The many-users deployment as it runs: `assistant serve` started as a subprocess with the
environment deploy/compose.yaml gives the `strata` service (read from the file, so the two
cannot drift), on the scale tier's real vLLM server and real `chroma run`, driven by the
official `openai` client and, for an upload, by `gradio_client`; a second process (the
`assistant` command on the same settings) finds the upload in the shared Chroma server.

The compose file names the other services by their hostnames (vllm:8000, chroma:8000) and
the shared volume's folders (/data/...): they are mapped to this test's servers and folders,
as the Dockerfile's CMD maps the data folders when /data is mounted.
"""

from __future__ import annotations

import json
import os
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


@pytest.fixture(scope="module")
def deployed(vllm_server, chroma_server, tmp_path_factory):
    """`assistant serve` as compose starts it; stopped with SIGTERM, killed if it lingers."""
    data = tmp_path_factory.mktemp("strata-deployed")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           **compose_environment(vllm_server.url, chroma_server.url, vllm_server.adapters_dir),
           # what the Dockerfile's CMD sets when /data is mounted
           "ASSISTANT_DATA_DIR": str(data / "strata"),
           "ASSISTANT_ADAPTERS_DIR": str(vllm_server.adapters_dir)}
    port, log = free_port(), data / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "assistant.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, url, log)
        yield url, env, log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


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

    url, _, log = deployed
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


def test_an_upload_through_the_web_app_is_found_by_another_process(deployed, tmp_path):
    from gradio_client import Client, handle_file

    url, env, _ = deployed
    doc = tmp_path / "brackenfold-lido.md"
    doc.write_text(UPLOAD)
    Client(url, verbose=False).predict([handle_file(str(doc))], "leisure", api_name="/upload")
    # Another process, its own data folder, the same Chroma server: the command line.
    other = {**env, "ASSISTANT_DATA_DIR": str(tmp_path / "other")}
    done = subprocess.run([sys.executable, "-m", "assistant.cli", "search",
                           "How much is a swim at the lido before nine?", "--json"],
                          cwd=ROOT, env=other, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    assert "brackenfold-lido.md" in json.dumps(found), found
