"""Two Strata processes on one real Chroma server (`chroma run`) see each other's uploads,
replacements and deletions at once, in the embedding and the keyword ranking alike.

Each process is long-lived (tests/scale/chroma_worker.py), as an app process is: its
keyword index, built by an earlier search, must notice the other process's writes. The
processes reach the server through a small proxy that demands a bearer token, in a tenant
and database of their own, so the auth header, tenant and database settings are used for
real; both load the real bundled embedder.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.scale

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "scale-test-token"
REPLY_TIMEOUT_S = 300  # a first request loads the embedder (and demo documents) on 2 busy cores


def document(word: str) -> str:
    """Three sections of equal length naming ``word``: any same-length word gives the same
    chunks, so a replacement has exactly as many chunks as the original."""
    sections = []
    for i in range(3):
        line = f"The {word} connection fee in district {i} is 14{i}.50, billed each quarter. "
        sections.append(f"## District {i}\n\n" + line * 14)
    return "\n\n".join(sections) + "\n"


@pytest.fixture(scope="module")
def auth_proxy(chroma_server):
    """An HTTP proxy to the Chroma server that answers 401 without the bearer token."""
    import httpx

    upstream = httpx.Client(base_url=chroma_server.url, timeout=30)

    class Proxy(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._reply(401, b'{"error":"Unauthorized"}', "application/json")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "authorization", "content-length")}
            got = upstream.request(self.command, self.path, content=body, headers=headers)
            self._reply(got.status_code, got.content, got.headers.get("content-type", ""))

        def _reply(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind or "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        def log_message(self, *args) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        upstream.close()


@pytest.fixture(scope="module")
def strata_env(chroma_server, auth_proxy, tmp_path_factory):
    """The environment of a Strata process on the shared server (a data dir of its own each)."""
    import httpx

    tenant, database = "strata-scale", f"db-{uuid.uuid4().hex[:8]}"
    api = f"{chroma_server.url}/api/v2/tenants"
    if httpx.get(f"{api}/{tenant}").status_code != 200:
        httpx.post(api, json={"name": tenant}).raise_for_status()
    httpx.post(f"{api}/{tenant}/databases", json={"name": database}).raise_for_status()
    base = {**os.environ, "HF_HUB_OFFLINE": "1", "ASSISTANT_CHROMA_URL": auth_proxy,
            "ASSISTANT_CHROMA_AUTH_TOKEN": TOKEN, "ASSISTANT_CHROMA_TENANT": tenant,
            "ASSISTANT_CHROMA_DATABASE": database}

    def env(name: str) -> dict[str, str]:
        return {**base, "ASSISTANT_DATA_DIR": str(tmp_path_factory.mktemp(f"strata-{name}"))}

    return env


class Worker:
    """A long-lived Strata process answering JSON requests (tests/scale/chroma_worker.py)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.scale.chroma_worker"], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("w"),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def reply(self) -> dict:
        try:
            return json.loads(self.lines.get(timeout=REPLY_TIMEOUT_S))
        except queue.Empty:
            raise AssertionError(f"no reply; its log:\n{self.log.read_text()[-3000:]}") from None

    def call(self, **request) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self.reply()
        assert "error" not in reply, reply
        return reply

    def stop(self) -> None:
        """SIGTERM (no write is under way between tests), then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process.stdin.close()


@pytest.fixture(scope="module")
def pair(strata_env, tmp_path_factory):
    """Two Strata processes, A and B, on the same server; both stopped afterwards."""
    logs = tmp_path_factory.mktemp("worker-logs")
    workers = [Worker(strata_env(name), logs / f"{name}.log") for name in "ab"]
    try:
        for worker in workers:
            assert worker.reply() == {"ready": True}
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def search(worker: Worker, query: str) -> list[dict]:
    return worker.call(op="search", query=query, k=5)["hits"]


def keyword_hits(worker: Worker, query: str, source: str) -> list[dict]:
    """Hits from ``source`` that the keyword (BM25) side found."""
    return [h for h in search(worker, query) if h["source"] == source and h["keyword"] > 0]


def test_an_upload_through_one_is_found_through_the_other(pair, tmp_path):
    a, b = pair
    search(b, "Quillmore connection fee")  # B's keyword index is built before the upload
    (tmp_path / "upload.md").write_text(document("Quillmore"))
    assert a.call(op="ingest", paths=[str(tmp_path / "upload.md")])["results"][0]["status"] \
        == "ingested"
    hits = search(b, "What is the Quillmore connection fee?")
    assert hits[0]["source"] == "upload.md" and hits[0]["score"] > 0.3
    assert keyword_hits(b, "Quillmore", "upload.md")
    assert "upload.md" in [d["name"] for d in b.call(op="docs")["documents"]]


def test_a_replacement_with_as_many_chunks_is_seen_by_both(pair, tmp_path):
    a, b = pair
    path = tmp_path / "tariff.md"
    path.write_text(document("Marlowick"))
    first = a.call(op="ingest", paths=[str(path)])["results"][0]
    assert keyword_hits(b, "Marlowick", "tariff.md")  # B has indexed the first version

    path.write_text(document("Tarnwhisk"))
    second = a.call(op="ingest", paths=[str(path)])["results"][0]
    assert second["status"] == "replaced" and second["chunks"] == first["chunks"] > 1
    for worker in (a, b):
        found = keyword_hits(worker, "Tarnwhisk", "tariff.md")
        assert len(found) == first["chunks"] and all("Tarnwhisk" in h["text"] for h in found)
        assert not [h for h in search(worker, "Marlowick fee") if "Marlowick" in h["text"]]


def test_a_deletion_through_one_disappears_from_the_other(pair, tmp_path):
    a, b = pair
    (tmp_path / "gone.md").write_text(document("Fenwyvern"))
    a.call(op="ingest", paths=[str(tmp_path / "gone.md")])
    assert keyword_hits(a, "Fenwyvern", "gone.md")  # A has indexed it

    assert b.call(op="delete", name="gone.md")["deleted"]["name"] == "gone.md"
    assert not [h for h in search(a, "Fenwyvern connection fee") if h["source"] == "gone.md"]
    assert "gone.md" not in [d["name"] for d in a.call(op="docs")["documents"]]


def _assistant(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args, "--json"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=180)


def test_the_command_line_uses_the_server(pair, strata_env, tmp_path):
    """`docs list`, not `search`: the same settings path without a third embedder load."""
    a, _ = pair
    (tmp_path / "cli.md").write_text(document("Orrinstead"))
    a.call(op="ingest", paths=[str(tmp_path / "cli.md")])
    done = _assistant(strata_env("cli"), "docs", "list")
    assert done.returncode == 0, done.stderr
    assert "cli.md" in [d["name"] for d in json.loads(done.stdout)["documents"]]


def test_a_wrong_token_is_a_clear_error_naming_the_server(strata_env, auth_proxy):
    env = {**strata_env("bad-token"), "ASSISTANT_CHROMA_AUTH_TOKEN": "wrong"}
    done = _assistant(env, "docs", "list")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    error = json.loads(done.stdout)["error"]
    assert f"Chroma server at {auth_proxy}" in error and "wrong" not in error
