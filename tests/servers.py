"""Servers that tests start as subprocesses: a free port on 127.0.0.1, and the one loop that
waits until one answers (vLLM, `chroma run`, `assistant serve`)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(process: subprocess.Popen, url: str, log: Path, timeout_s: float,
               what: str = "the server", every_s: float = 0.5,
               headers: dict[str, str] | None = None) -> float:
    """Poll ``GET url`` (with ``headers``) until it answers 200; returns the seconds waited.
    Fails with the end of ``log`` when the process exits first or ``timeout_s`` passes."""
    import httpx

    started = time.monotonic()
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what} not ready after {timeout_s:.0f} s:\n{_tail(log)}")
        time.sleep(every_s)


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-4000:]
    except OSError:
        return "(no log)"
