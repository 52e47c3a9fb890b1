"""The app, its clients and the floor of the answer benchmark (bench/bench_answer.py).

- ``AppServer``: `assistant serve` as `make run` starts it (every setting at its default,
  so ``ASSISTANT_BACKEND=auto``), in a subprocess on 127.0.0.1 over a scratch data
  directory, which the app fills with the demo documents at start as it does on a fresh
  install. Only the adapters folder differs: the demo adapter and a second one
  (``adapter_folder``), since the repository ships one.
- ``ask``: one question through ``/v1`` with the official ``openai`` client, streamed, timed
  as the client sees it (first text, last byte) with the server's own figures beside.
- ``Floor``: plain llama.cpp in its own process (``python -m bench.answer_clients floor
  SPEC``), the same GGUF opened through the same logits check the app runs
  (llamacpp_accuracy.open_checked: the configuration whose logits agree with the reference
  on this host), once per thread count, reading prompts of given token counts and writing
  given numbers of tokens, greedy, end-of-sequence ignored.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.soak_clients import ADAPTER, ROOT, Server

QUESTIONS_FILE = ROOT / "knowledge" / ADAPTER / "qa" / "test.jsonl"
SECOND = f"{ADAPTER}-half"  # made by adapter_folder when no second adapter is given
FLOOR_THREADS = (1, 2)
N_CTX, N_BATCH = 4096, 512  # as the app opens the GGUF (backends/llamacpp.py)
REQUEST_TIMEOUT_S = 900


def demo_questions(count: int) -> list[str]:
    """The first ``count`` in-scope held-out questions of the demo domain (the chat tab's
    examples are the first of the same file)."""
    rows = [json.loads(line) for line in QUESTIONS_FILE.read_text().splitlines() if line.strip()]
    return [r["question"] for r in rows if not r.get("out_of_scope")][:count]


def adapter_folder(folder: Path, second: Path | None = None) -> dict[str, str]:
    """``folder`` holding the demo adapter and a second one; {name: how it was made}.

    The second is ``second`` (a trained adapter folder) or, by default, the demo adapter with
    its LoRA B matrices halved: a different LoRA of the same shape, which llama.cpp must hold
    and apply apart from the demo's. Neither copy keeps a routing profile but the demo's,
    so auto and layered mode route as in the repository."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "adapters" / ADAPTER, folder / ADAPTER)
    if second is not None:
        shutil.copytree(second, folder / second.name)
        (folder / second.name / "profile.json").unlink(missing_ok=True)
        return {ADAPTER: "the demo adapter (adapters/)", second.name: f"copied from {second}"}
    from safetensors.numpy import load_file, save_file

    target = folder / SECOND
    target.mkdir()
    for name in ("adapter_config.json", "card.md"):
        shutil.copy(folder / ADAPTER / name, target / name)
    weights = load_file(str(folder / ADAPTER / "adapter_model.safetensors"))
    save_file({k: v * 0.5 if "lora_B" in k else v for k, v in weights.items()},
              str(target / "adapter_model.safetensors"))
    card = json.loads((folder / ADAPTER / "card.json").read_text())
    (target / "card.json").write_text(json.dumps({**card, "name": SECOND}, indent=2))
    return {ADAPTER: "the demo adapter (adapters/)",
            SECOND: f"{ADAPTER} with its LoRA B matrices halved (made by the benchmark: the "
                    "repository ships one adapter)"}


class AppServer(Server):
    """`assistant serve` with the app's default settings, over a scratch data directory."""

    def __init__(self, tmp: Path, adapters_dir: Path) -> None:
        super().__init__(tmp)
        for name in ("ASSISTANT_MAX_NEW_TOKENS", "ASSISTANT_MAX_BATCH", "ASSISTANT_MAX_QUEUE"):
            self.env.pop(name, None)  # the soak's caps and bounds: this one runs the defaults
        self.env["ASSISTANT_ADAPTERS_DIR"] = str(adapters_dir)


def client(url: str) -> Any:
    import openai

    return openai.OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0,
                         timeout=REQUEST_TIMEOUT_S)


def ask(openai_client: Any, model: str, question: str) -> dict[str, Any]:
    """One streamed answer: seconds to the first text and to the end as the client saw
    them, the usage, the answer's text and the server's own figures (its ``strata`` field)."""
    started = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    usage: Any = None
    strata: dict[str, Any] = {}
    try:
        stream = openai_client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": question}], stream=True,
            stream_options={"include_usage": True})
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.perf_counter()
                parts.append(chunk.choices[0].delta.content)
            strata = (chunk.model_extra or {}).get("strata") or strata
            usage = chunk.usage or usage
    except Exception as exc:  # noqa: BLE001 - a failed answer is counted, not fatal
        return {"model": model, "question": question, "error": f"{type(exc).__name__}: {exc}"[:300],
                "total_s": round(time.perf_counter() - started, 4)}
    end = time.perf_counter()
    timings = strata.get("timings") or {}
    return {"model": model, "question": question,
            "ttft_s": round((first or end) - started, 4), "total_s": round(end - started, 4),
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "mode": strata.get("mode"), "adapter": strata.get("adapter"),
            "rerank_tokens": strata.get("rerank_tokens"),
            "server_ttft_ms": timings.get("ttft_ms"), "server_total_ms": timings.get("total_ms"),
            "retrieval_ms": timings.get("retrieval_ms"), "text": "".join(parts)}


class Floor:
    """Plain llama.cpp in its own process for the whole run (``python -m
    bench.answer_clients floor SPEC``): ``measure(n, m)`` times reading n prompt tokens and
    writing m with each thread count, right after the app's answer of that size, so both
    meet the same load on a shared machine. ``info``: the llama.cpp version and, per thread
    count, the configuration its logits check chose."""

    def __init__(self, log: Path, threads: tuple[int, ...] = FLOOR_THREADS) -> None:
        from assistant.models.base_models import REGISTRY

        locate = REGISTRY["smollm2-135m"].locate
        if locate is None:
            raise RuntimeError("the bundled model has no GGUF")
        spec = json.dumps({"gguf": str(locate()), "threads": list(threads)})
        self.log = log
        with log.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.answer_clients", "floor", spec], cwd=ROOT,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
        self.info: dict[str, Any] = self._read()

    def measure(self, prompt_tokens: int, answer_tokens: int) -> dict[str, dict[str, float]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps([prompt_tokens, answer_tokens]) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-1:]
            raise RuntimeError(f"the llama.cpp floor process ended: {tail or 'no output'}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# --- inside the floor's process ---------------------------------------------------------
def serve_floor(gguf: str, threads: list[int]) -> None:
    """Open the GGUF once per thread count as the app's logits check would, say how, then
    answer each ``[prompt tokens, answer tokens]`` line of stdin with their timings."""
    import llama_cpp

    from assistant.backends.llamacpp_accuracy import open_checked

    text = "\n".join(p.read_text() for p in sorted(
        (ROOT / "knowledge" / ADAPTER / "docs").glob("*.md")))
    models: dict[str, tuple[Any, list[int]]] = {}
    info: dict[str, Any] = {"llama_cpp": llama_cpp.__version__, "gguf": Path(gguf).name,
                            "n_ctx": N_CTX, "n_batch": N_BATCH, "threads": {}}
    for count in threads:
        llm, accuracy = open_checked(llama_cpp, Path(gguf), n_ctx=N_CTX, n_batch=N_BATCH,
                                     n_threads=count, n_threads_batch=count, verbose=False)
        pool = llm.tokenize(text.encode(), add_bos=False)
        _time(llm, pool, 64, 4)  # warm-up
        models[str(count)] = (llm, pool)
        info["threads"][str(count)] = accuracy.to_dict()
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        n, m = json.loads(line)
        timings: dict[str, dict[str, float | None]] = {}
        for name, (llm, pool) in models.items():
            done = [t["total_s"] for t in timings.values() if t["total_s"] is not None]
            timings[name] = _time(llm, pool, n, m, give_up_s=min(done, default=None))
        print(json.dumps(timings), flush=True)
    for llm, _ in models.values():
        llm.close()


def _time(llm: Any, pool: list[int], prompt_tokens: int, answer_tokens: int,
          give_up_s: float | None = None) -> dict[str, float | None]:
    """Read ``prompt_tokens`` of ``pool`` (a full prefill) and write ``answer_tokens``. Past
    ``give_up_s`` (a faster thread count's time) this one cannot be the floor: it stops, and
    its total is None (llama.cpp's spinning threads can take minutes on a loaded machine)."""
    ids = (pool * (prompt_tokens // len(pool) + 1))[:prompt_tokens]
    llm.reset()
    started = time.perf_counter()
    first = started
    tokens = llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True)
    for count, _ in enumerate(tokens, start=1):
        now = time.perf_counter()
        if count == 1:
            first = now
        if give_up_s is not None and now - started > give_up_s:
            return {"ttft_s": round(first - started, 4), "total_s": None,
                    "gave_up_s": round(now - started, 4)}
        if count >= answer_tokens:
            break
    end = time.perf_counter()
    return {"ttft_s": round(first - started, 4), "total_s": round(end - started, 4)}


if __name__ == "__main__":
    import logging
    import os

    logging.disable(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if sys.argv[1:2] != ["floor"]:
        sys.exit("usage: python -m bench.answer_clients floor SPEC_JSON")
    spec = json.loads(sys.argv[2])
    serve_floor(spec["gguf"], spec["threads"])
