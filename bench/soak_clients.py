"""The server and the clients of the soak benchmark (bench/bench_soak.py).

``Server`` runs `assistant serve` in a subprocess over a temporary data directory and
reads its RSS from /proc; ``Clients`` is one visitor (an ``openai`` client, a raw HTTP
client for bodies no SDK would send, a ``gradio_client``) and sends one request of a
named kind, returning what happened to it without judging it: (answered, HTTP status
of a refusal or 0 for the web app's own refusal or None, detail).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MAX_TOKENS = 24  # short answers: the soak is about the server, not answer length
ADAPTER = "harrowgate-water"
REQUEST_TIMEOUT_S = 300
START_TIMEOUT_S = 900
WRONG_TYPES = [
    {"model": "strata-base", "messages": "When was the co-op founded?"},
    {"model": 42, "messages": [{"role": "user", "content": "hi"}]},
    {"model": "strata-base", "messages": [{"role": "user", "content": 7}]},
    {"model": "strata-base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "ten"},
    {"model": "strata-base", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"},
]
MALFORMED = [b'{"model": "strata", "messages": [', b"not json at all", b"\xff\xfe\x00{",
             b"", b"[1, 2, 3]"]
# issue 28's bad inputs: a lone UTF-16 surrogate (a JSON escape no UTF-8 text can hold), a
# question of 10 million characters, and a small .docx whose XML unpacks to 115 MB.
SURROGATE_BODY = (b'{"model": "strata-base", "messages": [{"role": "user", '
                  b'"content": "hi \\ud800 there"}]')  # + "}" or ', "stream": true}'
HUGE_QUESTION_CHARS = 10_000_000
BOMB_XML_MB = 115
_BOMB_LOCK = threading.Lock()
Sent = tuple[bool, "int | None", str]  # (answered, refusal status, detail)


def small_zip_docx(folder: Path) -> Path:
    """A ~0.3 MB .docx whose word/document.xml unpacks to BOMB_XML_MB MB (made once)."""
    import zipfile

    path = folder / "soak-small-zip.docx"
    with _BOMB_LOCK:
        if path.exists():
            return path
        run = (b"<w:p><w:r><w:t>All work and no play makes a dull bomb.</w:t></w:r></w:p>"
               * 14_000)  # ~1 MB
        partial = path.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as docx:
            docx.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://'
                          'schemas.openxmlformats.org/package/2006/content-types"/>')
            with docx.open("word/document.xml", "w", force_zip64=True) as xml:
                xml.write(b'<w:document xmlns:w="http://schemas.openxmlformats.org/'
                          b'wordprocessingml/2006/main"><w:body>')
                for _ in range(BOMB_XML_MB):
                    xml.write(run)
                xml.write(b"</w:body></w:document>")
        partial.rename(path)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (its peak) of process ``pid`` in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = round(int(value.split()[0]) / 1024, 1)
    return fields


class Server:
    """`assistant serve` in a subprocess over a temporary data directory."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.port = tmp, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "server.log"
        # No login, key, private uploads or other model from the caller's environment.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
        self.env.update({
            "ASSISTANT_DATA_DIR": str(tmp / "data"),
            "ASSISTANT_ADAPTERS_DIR": str(ROOT / "adapters"),
            "ASSISTANT_KNOWLEDGE_DIR": str(ROOT / "knowledge"),
            "ASSISTANT_MAX_NEW_TOKENS": str(MAX_TOKENS), "HF_HUB_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False", "ANONYMIZED_TELEMETRY": "False"})
        for name in ("ASSISTANT_CACHE_DIR", "ASSISTANT_MAX_BATCH", "ASSISTANT_MAX_QUEUE"):
            if name in os.environ:  # the converted weights; the queue bounds, to vary them
                self.env[name] = os.environ[name]
        self.proc: subprocess.Popen | None = None

    def setting(self, name: str) -> Any:
        """The value of setting ``name`` the server runs with (its environment or default)."""
        from assistant.settings import Settings

        default = Settings.model_fields[name].default
        value = self.env.get(f"ASSISTANT_{name.upper()}")
        return type(default)(value) if value else default

    def start(self) -> float:
        """Start it and wait until /v1/models answers; seconds that took."""
        import httpx

        script = Path(sys.executable).parent / "assistant"
        command = [str(script)] if script.is_file() else [sys.executable, "-m", "assistant.cli"]
        started = time.perf_counter()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*command, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        while time.perf_counter() - started < START_TIMEOUT_S:
            if self.proc.poll() is not None:
                raise RuntimeError(f"assistant serve exited {self.proc.returncode}:\n"
                                   f"{self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=5).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise RuntimeError(f"assistant serve not ready in {START_TIMEOUT_S} s:\n"
                           f"{self.log()[-3000:]}")

    def rss(self) -> dict[str, float]:
        assert self.proc is not None
        return rss_mb(self.proc.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""

    def engine(self) -> str | None:
        """The engine line the app logged at start (which engine answers and why)."""
        found = re.findall(r"engine: (answers come from .*)", self.log())
        return found[-1].strip() if found else None

    def stop(self) -> None:
        """Ctrl-C, then SIGTERM, then SIGKILL: the server never outlives the benchmark."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        for send, wait in ((lambda: proc.send_signal(signal.SIGINT), 20),
                           (proc.terminate, 10), (proc.kill, 10)):
            send()
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


class Sampler(threading.Thread):
    """The server's RSS every second while the soak runs, with ``progress()`` (requests
    done) at that moment: ``samples`` is [(done, MB)]."""

    def __init__(self, server: Server, progress: Callable[[], int]) -> None:
        super().__init__(daemon=True)
        self.server, self.progress, self.done = server, progress, threading.Event()
        self.samples: list[tuple[int, float]] = []

    def run(self) -> None:
        while not self.done.wait(1.0):
            try:
                self.samples.append((self.progress(), self.server.rss()["VmRSS"]))
            except (OSError, KeyError):
                return


class Clients:
    """One visitor: an openai client, a raw HTTP client and a gradio_client of its own."""

    def __init__(self, url: str, files: Path, questions: list[str]) -> None:
        import httpx
        import openai
        from gradio_client import Client

        # max_retries=0: a 429 must reach the count, not be retried away.
        self.openai = openai.OpenAI(base_url=f"{url}/v1", api_key="soak", max_retries=0,
                                    timeout=REQUEST_TIMEOUT_S)
        self.http = httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S)
        self.web = Client(url, verbose=False)
        self.files, self.questions = files, questions

    def close(self) -> None:
        self.http.close()
        self.openai.close()

    def send(self, kind: str, n: int) -> Sent:
        """Send request number ``n`` of ``kind`` (a key of bench_soak.MIX)."""
        import openai

        try:
            return self._send(kind, n, self.questions[n % len(self.questions)])
        except openai.APIStatusError as exc:
            return False, exc.status_code, ""
        except openai.APIConnectionError as exc:  # also a timeout: no answer came
            return False, None, f"exception {type(exc).__name__}"
        except openai.APIError as exc:  # an error event inside a stream: no status
            return False, None, f"stream error {exc.code or exc.type}"
        except Exception as exc:  # noqa: BLE001  # every failure is counted, none stops the soak
            if "queue is full" in str(exc).lower():
                return False, None, "queue_full (web)"
            if type(exc).__name__ == "AppError":  # the web app's gr.Error
                return False, 0, "web refusal (gr.Error)"
            return False, None, f"exception {type(exc).__name__}"

    def _send(self, kind: str, n: int, question: str) -> Sent:
        if kind.startswith("api ") or kind in ("bad: api empty question", "bad: api unknown model"):
            model = {"bad: api empty question": "strata-base",
                     "bad: api unknown model": "gpt-4o"}.get(kind) or kind.split()[1]
            text = " " if kind == "bad: api empty question" else question
            return self._api(model, text, kind.endswith("stream")), None, ""
        if kind in RAW_BODIES:
            response = self.http.post("/v1/chat/completions", content=RAW_BODIES[kind](n),
                                      headers={"Content-Type": "application/json"})
            return response.status_code == 200, response.status_code, ""
        if kind.startswith("web chat") or kind == "bad: web empty question":
            return self._chat(kind, question)
        return self._upload(kind, n)

    def _api(self, model: str, question: str, stream: bool) -> bool:
        messages: Any = [{"role": "user", "content": question}]
        if not stream:
            reply = self.openai.chat.completions.create(model=model, messages=messages,
                                                        max_tokens=MAX_TOKENS)
            return bool(reply.usage and reply.usage.completion_tokens
                        and reply.choices[0].message.content is not None)
        chunks = list(self.openai.chat.completions.create(
            model=model, messages=messages, max_tokens=MAX_TOKENS, stream=True,
            stream_options={"include_usage": True}))
        finished = any(c.choices and c.choices[0].finish_reason for c in chunks)
        return finished and bool(chunks[-1].usage and chunks[-1].usage.completion_tokens)

    def _chat(self, kind: str, question: str) -> Sent:
        bad = kind.startswith("bad")
        mode = "base" if bad else kind.split()[-1]
        adapter = ADAPTER if mode in ("adapter", "layered") else ""
        job = self.web.submit("   " if bad else question, [], mode, adapter, api_name="/chat")
        *_, details = job.result(timeout=REQUEST_TIMEOUT_S)
        if details and details.get("error"):
            busy = "busy" in details["error"] or "queue" in details["error"]
            return False, None, "queue_full (web)" if busy else "web answer error"
        return bool(details and details.get("completion_tokens")), None, ""

    def _upload(self, kind: str, n: int) -> Sent:
        from gradio_client import handle_file

        bad = kind == "bad: web corrupt upload"
        if kind == "bad: web small-zip docx":
            path = small_zip_docx(self.files)
        elif bad:  # a format's magic bytes, then noise
            path = self.files / f"soak-bad-{n}.{'docx' if n % 2 else 'pdf'}"
            noise = bytes(random.Random(n).randrange(256) for _ in range(4096))
            path.write_bytes((b"PK\x03\x04" if n % 2 else b"%PDF-1.7\n") + noise)
        else:
            path = self.files / f"soak-notes-{n}.md"
            path.write_text(f"# Soak notes {n}\n\n## Gauge {n}\n\nGauge {n} at the weir reads "
                            f"{n * 7 % 97} centimetres on Mondays.\n")
        job = self.web.submit([handle_file(str(path))], "", api_name="/upload")
        results, *_ = job.result(timeout=REQUEST_TIMEOUT_S)
        status = results["data"][0][1]
        if status.startswith("rejected"):
            return False, 0, "upload rejected"
        return status.startswith("ingested"), None, f"upload: {status[:60]}"


def _surrogate(n: int) -> bytes:
    return SURROGATE_BODY + (b', "stream": true}' if n % 2 else b"}")


def _huge_question(n: int) -> bytes:
    return json.dumps({"model": "strata-base", "stream": bool(n % 2), "messages": [
        {"role": "user", "content": "x" * HUGE_QUESTION_CHARS}]}).encode()


# bad-input kind -> the raw request body of its request number n
RAW_BODIES: dict[str, Callable[[int], bytes]] = {
    "bad: api wrong types": lambda n: json.dumps(WRONG_TYPES[n % len(WRONG_TYPES)]).encode(),
    "bad: api malformed JSON": lambda n: MALFORMED[n % len(MALFORMED)],
    "bad: api lone surrogate": _surrogate,
    "bad: api 10 MB question": _huge_question,
}

