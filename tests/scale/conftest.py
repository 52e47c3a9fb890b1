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
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def _wait_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vLLM exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise RuntimeError(f"vLLM not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


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
        _wait_ready(process, url, log)
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
    import httpx

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
        deadline = time.monotonic() + CHROMA_READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"chroma exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"chroma not ready after {CHROMA_READY_TIMEOUT_S} s")
            time.sleep(0.2)
        yield ChromaServer(url, path / "db", log)
    finally:
        _stop(process)
