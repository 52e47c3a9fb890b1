"""The scale tier's servers: one real vLLM for the whole session, always stopped.

vLLM runs from its own virtualenv (.venv-vllm, built by `.ci/setup.sh --test` through
.ci/vllm.sh) and is started by the same script and flags a deployment uses, serving the
bundled SmolLM2 from the safetensors folder Strata's model registry writes, with a copy of
the bundled demo adapter in a temporary adapters folder (adapters trained by the tests go
there too, never into the repository's adapters/).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
DEMO = "harrowgate-water"
READY_TIMEOUT_S = 420  # start-up on 2 busy cores, with room to spare


@dataclass
class VllmServer:
    url: str  # the OpenAI API base, ending in /v1
    adapters_dir: Path
    model_dir: Path
    startup_s: float
    log: Path


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


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    """A running vLLM server; stopped at the end of the session, also after a failure."""
    if not VLLM_PYTHON.exists():
        pytest.skip("no .venv-vllm: run `bash .ci/vllm.sh install` (make test does)")
    from assistant.models.base_models import REGISTRY, ensure_converted
    from assistant.settings import Settings

    model_dir = ensure_converted(REGISTRY["smollm2-135m"], Settings(_env_file=None).cache_dir)
    adapters = tmp_path_factory.mktemp("served-adapters")
    shutil.copytree(ROOT / "adapters" / DEMO, adapters / DEMO)
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-log") / "vllm.log"
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(
            ["bash", str(ROOT / ".ci" / "vllm.sh"), "serve", str(model_dir), str(port),
             f"{DEMO}={adapters / DEMO}"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(process, f"{url}/health", log, READY_TIMEOUT_S, "vLLM", every_s=1)
        yield VllmServer(f"{url}/v1", adapters, model_dir, time.monotonic() - started, log)
    finally:
        _stop(process)


# --- Chroma server ---------------------------------------------------------------------
CHROMA = ROOT / ".venv" / "bin" / "chroma"  # in Strata's own virtualenv (chromadb's CLI)
CHROMA_READY_TIMEOUT_S = 60


@dataclass
class ChromaServer:
    url: str  # http://127.0.0.1:PORT
    path: Path  # its --path
    log: Path


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """A real `chroma run --path DIR --host 127.0.0.1 --port P` on a free port; stopped at
    the end of the session, also after a failure."""
    if not CHROMA.exists():
        pytest.skip("no chroma CLI in .venv (chromadb is a dependency: run make setup)")
    path = tmp_path_factory.mktemp("chroma-server")
    log = path / "chroma.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(path / "db"), "--host", "127.0.0.1",
             "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=path)
    try:
        wait_ready(process, f"{url}/api/v2/heartbeat", log, CHROMA_READY_TIMEOUT_S, "chroma",
                   every_s=0.2)
        yield ChromaServer(url, path / "db", log)
    finally:
        _stop(process)
