"""The llama.cpp backend: the base model's GGUF decoded by llama.cpp in this process, with
the PEFT adapters converted to llama.cpp LoRA files and switched per request.

Why: on this kind of two-core CPU llama.cpp decodes the same 4-bit weights about four
times faster than the transformers loop (``python -m bench.run decode``), and it applies
a LoRA per request without touching the base, so adapters stay hot-swappable. It is the
default serving engine (``ASSISTANT_BACKEND=auto``, backends/engine.py) wherever
llama-cpp-python is installed (setup builds it once: ``make llamacpp``) and its logits pass
the check at start (llamacpp_accuracy.py); elsewhere the local generator answers.

What stays the same as the local backend: the prompt is the same chat template's token
ids (the GGUF and the tokenizer share one vocabulary), tokens are chosen by the same
``pick_token`` (greedy or sampled, the repetition penalty on the answer's own tokens),
and the answer ends, streams and is timed by the same rules (models/decoding.py). What
differs: one answer at a time (a request queue, no mixed batches), and the weights are the
GGUF's own 4-bit format rather than NF4, so greedy answers are close to the local ones but
not equal.

Threads, as the local batcher's: the prompt (one large batch) is read on ``threads``
(ASSISTANT_THREADS; 0 = one per core), each decode step on ``decode_threads``
(ASSISTANT_DECODE_THREADS, default 1). llama.cpp's threads spin while they wait, so on two
cores shared with anything else (the app's own embedder, a training run) two decode
threads lose most of their speed while one keeps it (``BENCH_THREADS=1`` and ``2`` in
``python -m bench.run decode``; docs/benchmarks.md).
Sentence re-ranking and training still use the local model.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from assistant.backends.llamacpp_accuracy import open_checked
from assistant.errors import QueueFull, StrataError
from assistant.models.decoding import Decoding, Request, running_worker
from assistant.models.sampling import SamplingParams, pick_token
from assistant.models.stream import Generation, TokenStream

if TYPE_CHECKING:
    from assistant.models.adapters import AdapterManager
    from assistant.models.generation import Message
    from assistant.settings import Settings

log = logging.getLogger(__name__)
INSTALL_HINT = ("make llamacpp, or bash .ci/llamacpp.sh install (compiles llama.cpp once, "
                "about 10 minutes on two cores)")


class LlamaCppBackend:
    """Answers from llama.cpp, one at a time, each with its own adapter or none."""

    name = "llamacpp"
    token_counting = "tokenizer"

    def __init__(self, gguf: Path, adapters: AdapterManager, cache_dir: Path,
                 defaults: SamplingParams | None = None, n_ctx: int = 4096, threads: int = 0,
                 max_queue: int = 32, decode_threads: int = 0) -> None:
        llama_cpp = import_llama_cpp()
        self._llama_cpp = llama_cpp
        self.gguf = gguf
        self.adapters = adapters
        self.tokenizer = adapters.base.tokenizer
        self.cache_dir = cache_dir
        self.defaults = defaults or SamplingParams()
        self.threads = threads or os.cpu_count() or 1  # reading the prompt
        self.decode_threads = decode_threads or self.threads  # each step (module doc)
        # checked against the fp32 reference: AMX-repacked Q4 weights compute wrong logits
        self.llm, self.accuracy = open_checked(
            llama_cpp, gguf, n_ctx=n_ctx, n_batch=512, n_threads=self.decode_threads,
            n_threads_batch=self.threads, verbose=False)
        self.eos_ids = {int(self.llm.token_eos())} | _tokenizer_eos(self.tokenizer)
        self.max_queue = max_queue
        self._loras: dict[str, tuple[Any, str]] = {}  # name -> (llama.cpp handle, weights key)
        self._cached: list[int] = []  # the token ids whose keys/values the context holds
        self._cached_adapter: str | None = None
        self._reused = 0  # prompt tokens the last answer did not evaluate again
        self._queue: queue.Queue[Request] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # --- the Backend interface ----------------------------------------------------------
    def stream(self, messages: list[Message], params: SamplingParams | None = None,
               adapter: str | None = None) -> TokenStream:
        if adapter is not None:
            self.adapters.check(adapter)  # refuse an unknown adapter before queueing
        if self._queue.qsize() >= self.max_queue:
            raise QueueFull(f"{self._queue.qsize()} requests are waiting (the queue holds "
                            f"{self.max_queue}); try again shortly")
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        return self.submit(list(ids), params or self.defaults, adapter)

    def submit(self, prompt_ids: list[int], params: SamplingParams,
               adapter: str | None = None) -> TokenStream:
        """Queue a tokenized prompt (what ``stream`` does after the chat template)."""
        room = self.llm.n_ctx()
        if len(prompt_ids) + params.max_new_tokens > room:
            raise StrataError(f"the prompt ({len(prompt_ids)} tokens) and the answer "
                              f"({params.max_new_tokens}) exceed llama.cpp's context of {room} "
                              "tokens; shorten the conversation or the answer length")
        request = Request(prompt_ids, params, adapter)
        self._queue.put(request)
        self._ensure_worker()
        return request.out

    def forget_prompt(self) -> None:
        """The next answer evaluates its whole prompt (benchmarks: comparable prefill)."""
        self._queue.join()
        self._cached = []

    def generate(self, messages: list[Message], params: SamplingParams | None = None,
                 adapter: str | None = None) -> Generation:
        return self.stream(messages, params, adapter).wait()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.adapters.base.name, "weights": self.gguf.name,
                "llama_cpp": self._llama_cpp.__version__, "threads": self.threads,
                "decode_threads": self.decode_threads,
                "token_counting": self.token_counting, "accuracy": self.accuracy.to_dict(),
                "adapters_converted": sorted(self._loras)}

    # --- the worker -----------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        with self._start_lock:
            self._worker = running_worker(self._worker, self._loop, "strata-llamacpp")

    def _loop(self) -> None:
        while True:
            request = self._queue.get()
            try:
                self._answer(request)
            except Exception as exc:  # one bad request must not stop the worker
                log.exception("llama.cpp generation failed")
                self._cached = []  # the context's state is unknown now
                request.out.end(exc if isinstance(exc, StrataError)
                                else StrataError(f"llama.cpp generation failed: {exc}"))
            finally:
                self._queue.task_done()

    def _answer(self, request: Request) -> None:
        """Decode one request by the shared rules (models/decoding.py); the token just
        picked is evaluated only when the answer goes on."""
        state = Decoding(request, self.tokenizer, self.eos_ids)
        self._reused = 0
        if not state.stopped():
            self._use_adapter(request.adapter)
            self._prefill(request.prompt_ids)
            while True:
                state.accept(self._pick(state.answer, request.params, state.rng))
                if state.stopped():
                    break
                state.emit()
                self.llm.eval([state.answer[-1]])
                self._cached.append(state.answer[-1])
            state.emit()
        state.end(reused_prompt_tokens=self._reused)

    def _prefill(self, prompt_ids: list[int]) -> None:
        """Evaluate the prompt, reusing the cached keys/values of a shared prefix (the
        system prompt and passages repeat across questions)."""
        keep = 0
        limit = min(len(self._cached), len(prompt_ids) - 1)  # at least one token to evaluate
        while keep < limit and self._cached[keep] == prompt_ids[keep]:
            keep += 1
        self._reused = keep
        self.llm.n_tokens = keep  # eval() drops the cache from here on
        self._cached = self._cached[:keep]
        self.llm.eval(prompt_ids[keep:])
        self._cached = list(prompt_ids)

    def _pick(self, answer: list[int], params: SamplingParams, rng: Any) -> int:
        """The next token, as ``pick_token`` chooses it. Greedy picks in numpy, so no torch
        operation (and none of torch's threads) runs between llama.cpp's steps."""
        import numpy as np

        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.llm.n_vocab(),))
        if params.temperature > 0:
            import torch

            return pick_token(torch.from_numpy(logits.copy()), answer, params, rng)
        if params.repetition_penalty != 1.0 and answer:  # as sampling._penalise does
            logits = logits.copy()
            seen = np.array(sorted(set(answer)))
            values = logits[seen]
            penalty = params.repetition_penalty
            logits[seen] = np.where(values > 0, values / penalty, values * penalty)
        return int(np.argmax(logits))

    def _use_adapter(self, name: str | None) -> None:
        """Switch the context's LoRA; a switch empties the key/value cache (computed with
        the other weights)."""
        llama_cpp, ctx = self._llama_cpp, self.llm._ctx.ctx
        handle = self._lora(name) if name else None
        if name == self._cached_adapter:
            return
        llama_cpp.llama_clear_adapter_lora(ctx)
        if handle is not None and llama_cpp.llama_set_adapter_lora(ctx, handle, 1.0) != 0:
            raise StrataError(f"llama.cpp could not apply adapter {name!r}")
        self._cached, self._cached_adapter = [], name

    def _lora(self, name: str) -> Any:
        """The adapter's llama.cpp handle, converted and loaded once per weights file (a
        retrained adapter is converted again)."""
        from assistant.backends.lora_gguf import convert

        folder = self.adapters.path_of(name)
        stat = (folder / "adapter_model.safetensors").stat()
        key = f"{stat.st_mtime_ns}-{stat.st_size}"
        known = self._loras.get(name)
        if known and known[1] == key:
            return known[0]
        path = convert(folder, self.gguf, self.cache_dir)
        handle = self._llama_cpp.llama_adapter_lora_init(self.llm._model.model,
                                                         str(path).encode())
        if not handle:
            raise StrataError(f"llama.cpp could not load adapter {name!r} from {path}")
        if known:  # the old weights: the context must not keep using them
            self._llama_cpp.llama_clear_adapter_lora(self.llm._ctx.ctx)
            self._llama_cpp.llama_adapter_lora_free(known[0])
            self._cached_adapter, self._cached = None, []
        self._loras[name] = (handle, key)
        log.info("llama.cpp: adapter %s ready (%s)", name, path.name)
        return handle


def _tokenizer_eos(tokenizer: Any) -> set[int]:
    eos = tokenizer.eos_token_id
    return {int(eos)} if isinstance(eos, int) else set()


def import_llama_cpp() -> ModuleType:
    """The ``llama_cpp`` module, or a StrataError saying how to install it."""
    # llama.cpp reuses a step's compute graph when the shapes repeat, and in the bundled
    # version that reuse misses a changed LoRA: switching adapters between two same-shaped
    # steps kept the old one (a llama.cpp test checks the switch).
    os.environ.setdefault("LLAMA_GRAPH_REUSE_DISABLE", "1")
    try:
        import llama_cpp
    except (ImportError, OSError) as exc:  # OSError: a wheel built for another CPU or libc
        raise StrataError(f"llama-cpp-python is not installed ({exc}): {INSTALL_HINT}") from exc
    return llama_cpp


def gguf_for(settings: Settings) -> Path:
    """``settings.base_model``'s GGUF file (a registry model with a GGUF)."""
    from assistant.models.base_models import REGISTRY

    spec = REGISTRY.get(settings.base_model)
    if spec is None or spec.locate is None:
        with_gguf = ", ".join(n for n, s in REGISTRY.items() if s.locate)
        raise StrataError(f"backend=llamacpp reads a GGUF file: {settings.base_model!r} has "
                          f"none (GGUF models: {with_gguf})")
    return spec.locate()


def from_settings(settings: Settings, adapters: AdapterManager) -> LlamaCppBackend:
    """The backend for ``settings.base_model``'s GGUF (a registry model with a GGUF)."""
    return LlamaCppBackend(gguf_for(settings), adapters, settings.cache_dir,
                           SamplingParams.from_settings(settings), threads=settings.threads,
                           max_queue=settings.max_queue, decode_threads=settings.decode_threads)
