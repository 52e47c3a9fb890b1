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
and the answer ends, streams and is timed by the same rules (models/decoding.py). Up to
``max_batch`` answers are decoded together (llamacpp_batch.py): each in its own sequence of
one shared cache, a new one joining at the next step; the rows of one adapter share a batch
and adapters take turns by step, so no row is computed under another's adapter. More
waiting than ``max_queue`` are refused (QueueFull: the API's 429). The weights are the
GGUF's own 4-bit format rather than NF4, so greedy answers are close to the local ones but
not equal.

Threads, as the local batcher's: the prompt (one large batch) is read on ``threads``
(ASSISTANT_THREADS; 0 = one per core), each decode step on ``decode_threads``
(ASSISTANT_DECODE_THREADS, default 1). llama.cpp's threads spin while they wait, so on two
cores shared with anything else (the app's own embedder, a training run) two decode
threads lose most of their speed while one keeps it (``BENCH_THREADS=1`` and ``2`` in
``python -m bench.run decode``; docs/benchmarks.md).
Sentence re-ranking reads its question likelihoods from the same weights
(llamacpp_likelihood.py), on every core while no answer is decoded, else on the decode
threads; only training uses the torch model.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
from collections.abc import Callable
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


class _Row(Decoding):
    """One answer being decoded: its decoding, its sequence, where its cache ends."""

    slot = -1  # the llama.cpp sequence it decodes in
    length = 0  # tokens of this sequence in the cache (prompt + answer tokens fed)
    reused = 0  # prompt tokens found in the cache (not evaluated again)


class LlamaCppBackend:
    """Answers from llama.cpp, up to ``max_batch`` at once, each with its own adapter."""

    name = "llamacpp"
    token_counting = "tokenizer"

    def __init__(self, gguf: Path, adapters: AdapterManager, cache_dir: Path,
                 defaults: SamplingParams | None = None, n_ctx: int = 4096, threads: int = 0,
                 max_queue: int = 32, decode_threads: int = 0, max_batch: int = 8) -> None:
        from assistant.backends.llamacpp_batch import Sequences
        from assistant.backends.llamacpp_likelihood import LlamaLikelihood
        from assistant.backends.llamacpp_loras import Loras

        llama_cpp = import_llama_cpp()
        self._llama_cpp = llama_cpp
        self.gguf = gguf
        self.adapters = adapters
        self.tokenizer = adapters.base.tokenizer
        self.cache_dir = cache_dir
        self.defaults = defaults or SamplingParams()
        self.threads = threads or os.cpu_count() or 1  # reading the prompt
        self.decode_threads = decode_threads or self.threads  # each step (module doc)
        # checked against the fp32 reference: AMX-repacked Q4 weights compute wrong logits;
        # its own context only reads the check's prompt, the answers use ``seqs``
        self.llm, self.accuracy = open_checked(
            llama_cpp, gguf, n_ctx=128, n_batch=128, n_threads=self.decode_threads,
            n_threads_batch=self.threads, verbose=False)
        self.quantization = gguf_type(llama_cpp, self.llm.metadata)  # the ledger's, not NF4
        self.seqs = Sequences(llama_cpp, self.llm._model.model, self.llm.n_vocab(), n_ctx,
                              max_batch, self.threads, self.decode_threads)
        self.eos_ids = {int(self.llm.token_eos())} | _tokenizer_eos(self.tokenizer)
        self.max_batch, self.max_queue = max_batch, max_queue
        # adapters' LoRA handles: loaded by the worker or the Adapters tab, freed by the worker
        self.loras = Loras(llama_cpp, self.llm._model.model, gguf, cache_dir, adapters)
        # per sequence: the token ids its cells hold, and under which adapter
        self._cached: list[list[int]] = [[] for _ in range(max_batch)]
        self._cached_adapter: list[str | None] = [None] * max_batch
        self._rows: list[_Row] = []
        self._waiting: collections.deque[Request] = collections.deque()
        self._forget = False
        self._queue: queue.Queue[Request] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._admitting = False  # the worker is reading a request's prompt (decoding())
        # other CPU work in this process (a training job, set by Services) that re-ranking
        # on every core would crowd, as a decoding answer would
        self.busy_elsewhere: Callable[[], bool] = lambda: False
        self._start_lock = threading.Lock()
        self.peak_batch = 0  # the most answers decoded together so far (benchmarks)
        # sentence re-ranking's question likelihood, on its own context over these weights;
        # on every core while no answer is decoded, else on the decode threads (module doc)
        self.scorer = LlamaLikelihood(llama_cpp, self.llm._model.model, self.llm.n_vocab(),
                                      self.tokenizer, self.decode_threads, self.threads,
                                      busy=lambda: self.decoding() or self.busy_elsewhere())

    # --- the Backend interface ----------------------------------------------------------
    def stream(self, messages: list[Message], params: SamplingParams | None = None,
               adapter: str | None = None) -> TokenStream:
        if adapter is not None:
            self.adapters.check(adapter)  # refuse an unknown adapter before queueing
        if self._queue.qsize() + len(self._waiting) >= self.max_queue:
            raise QueueFull(f"{self.max_queue} requests are waiting (the queue holds "
                            f"{self.max_queue}); try again shortly")
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        return self.submit(list(ids), params or self.defaults, adapter)

    def submit(self, prompt_ids: list[int], params: SamplingParams,
               adapter: str | None = None) -> TokenStream:
        """Queue a tokenized prompt (what ``stream`` does after the chat template)."""
        room = self.seqs.n_ctx
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
        self._forget = True

    def generate(self, messages: list[Message], params: SamplingParams | None = None,
                 adapter: str | None = None) -> Generation:
        return self.stream(messages, params, adapter).wait()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.adapters.base.name, "weights": self.gguf.name,
                "llama_cpp": self._llama_cpp.__version__, "threads": self.threads,
                "decode_threads": self.decode_threads, "max_batch": self.max_batch,
                "quantization": self.quantization, "token_counting": self.token_counting,
                "accuracy": self.accuracy.to_dict(),
                "adapters_converted": self.loras.names}

    def decoding(self) -> bool:
        """Whether answers are being decoded, admitted (their prompts read on every core) or
        wait to be (read without the worker's lock: a moment's staleness only picks the
        other thread count for one batch of the re-ranker's)."""
        return bool(self._admitting or self._rows or self._waiting or not self._queue.empty())

    # --- the worker -----------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        with self._start_lock:
            self._worker = running_worker(self._worker, self._loop, "strata-llamacpp")

    def _loop(self) -> None:
        while True:
            if not self._rows and not self._waiting:
                self._waiting.append(self._queue.get())  # idle: wait for a request
            while True:
                try:
                    self._waiting.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            while self._waiting and len(self._rows) < self.max_batch and self._fits():
                self._admitting = True
                try:
                    self._guarded(self._admit, self._waiting.popleft())
                finally:
                    self._admitting = False
            if self._rows:
                self._guarded(self._step)

    def _guarded(self, work: Callable[..., None], *args: Request) -> None:
        """One piece of the worker's work; a failure ends every row in the batch (and the
        request being admitted) with the error, never the worker."""
        try:
            work(*args)
        except Exception as exc:  # noqa: BLE001  (surfaced to each reader)
            log.exception("llama.cpp generation failed")
            error = exc if isinstance(exc, StrataError) else StrataError(
                f"llama.cpp generation failed: {exc}")
            for request in [row.request for row in self._rows] + list(args):
                if request.out.result is None:
                    request.out.end(error)
            self._rows = []
            self.seqs.clear()  # the cache's state is unknown now
            self._cached = [[] for _ in range(self.max_batch)]

    def _fits(self) -> bool:
        """Whether the next waiting request's prompt and answer fit in the cells the running
        rows leave (a request never fits alone only if ``submit`` refused it)."""
        request = self._waiting[0]
        need = len(request.prompt_ids) + request.params.max_new_tokens
        held = sum(len(row.request.prompt_ids) + row.request.params.max_new_tokens
                   for row in self._rows)
        return held + need <= self.seqs.n_ctx

    def _admit(self, request: Request) -> None:
        """Give the request a sequence, read its prompt, pick its first token."""
        row = _Row(request, self.tokenizer, self.eos_ids)
        if row.stopped():  # closed while it waited
            row.end()
            return
        if self._forget:
            self._forget = False
            self._free_idle()
        # the adapter first: a retrained one is converted again, and the cells computed
        # with its old weights are dropped before a sequence is chosen
        try:
            handle = self._lora(request.adapter) if request.adapter else None
        except Exception as exc:  # noqa: BLE001  (a bad adapter fails its request only)
            request.out.end(exc if isinstance(exc, StrataError) else StrataError(
                f"llama.cpp could not load adapter {request.adapter!r}: {exc}"))
            return
        row.slot = self._slot_for(request)
        self._prefill(row, handle)
        self._after_pick(row, self._pick(row, -1))  # the prompt's last token's logits
        if row.finish is None:
            self._rows.append(row)
            self.peak_batch = max(self.peak_batch, len(self._rows))

    def _slot_for(self, request: Request) -> int:
        """A free sequence: the one whose cells hold the longest prefix of this prompt under
        the same adapter (the system prompt and passages repeat), else an empty one."""
        busy = {row.slot for row in self._rows}
        free = [s for s in range(self.max_batch) if s not in busy]

        def shared(slot: int) -> int:
            if self._cached_adapter[slot] != request.adapter:
                return -1
            return common_prefix_length(self._cached[slot], request.prompt_ids)

        return max(free, key=lambda s: (shared(s), not self._cached[s], -s))

    def _free_idle(self) -> None:
        """Drop what idle sequences keep for reuse (their cells go to running answers)."""
        busy = {row.slot for row in self._rows}
        for slot in range(self.max_batch):
            if slot not in busy and self._cached[slot]:
                self.seqs.drop(slot)
                self._cached[slot] = []

    def _prefill(self, row: _Row, handle: Any) -> None:
        """Read the prompt into the row's sequence after the prefix its cells already hold,
        in batches of at most ``n_batch`` tokens, under the row's adapter."""
        from assistant.backends.llamacpp_batch import CacheFull

        prompt, slot = row.request.prompt_ids, row.slot
        keep = 0
        if self._cached_adapter[slot] == row.request.adapter:
            keep = min(common_prefix_length(self._cached[slot], prompt), len(prompt) - 1)
        self.seqs.drop(slot, keep)
        self._cached[slot], self._cached_adapter[slot] = prompt[:keep], row.request.adapter
        row.reused = keep
        self.seqs.use_adapter(handle)
        step = self.seqs.n_batch
        for start in range(keep, len(prompt), step):
            chunk = prompt[start:start + step]
            items = [(token, start + i, slot, start + i == len(prompt) - 1)
                     for i, token in enumerate(chunk)]
            try:
                self.seqs.decode(items, prefill=True)
            except CacheFull:  # cells kept for reuse by idle sequences: free them, once
                self._free_idle()
                self.seqs.decode(items, prefill=True)
            self._cached[slot].extend(chunk)
        row.length = len(prompt)

    def _step(self) -> None:
        """Feed every row its last picked token, one adapter's rows at a time, and pick each
        row's next token; finished rows leave."""
        by_adapter: dict[str | None, list[_Row]] = {}
        for row in self._rows:
            by_adapter.setdefault(row.request.adapter, []).append(row)
        for name, rows in by_adapter.items():
            self.seqs.use_adapter(self._lora(name) if name else None)
            self.seqs.decode([(row.answer[-1], row.length, row.slot, True) for row in rows],
                             prefill=False)
            for index, row in enumerate(rows):
                self._cached[row.slot].append(row.answer[-1])
                row.length += 1
                self._after_pick(row, self._pick(row, index))
        self._rows = [row for row in self._rows if row.finish is None]

    def _after_pick(self, row: _Row, token: int) -> None:
        """Take the picked token by the shared rules; a row that ended gives its result."""
        row.accept(token)
        ended = row.stopped()
        row.emit()
        if ended:
            row.end(reused_prompt_tokens=row.reused)

    def _pick(self, row: _Row, index: int) -> int:
        """The next token for ``row`` from the batch's ``index``-th logits, as
        ``pick_token`` chooses it. Greedy picks in numpy, so no torch operation (and none
        of torch's threads) runs between llama.cpp's steps."""
        import numpy as np

        logits, params, answer = self.seqs.logits(index), row.request.params, row.answer
        if params.temperature > 0:
            import torch

            return pick_token(torch.from_numpy(logits.copy()), answer, params, row.rng)
        if params.repetition_penalty != 1.0 and answer:  # as sampling._penalise does
            logits = logits.copy()
            seen = np.array(sorted(set(answer)))
            values = logits[seen]
            penalty = params.repetition_penalty
            logits[seen] = np.where(values > 0, values / penalty, values * penalty)
        return int(np.argmax(logits))

    def _lora(self, name: str) -> Any:
        """The adapter's llama.cpp handle (llamacpp_loras.py), with retired ones freed."""
        handle = self.loras.handle(name)
        self._retire()
        return handle

    def _retire(self) -> None:
        """Free the handles of unloaded or retrained adapters (on the worker, so never one
        being applied): no idle sequence keeps cells computed with their weights."""
        for name, handle in self.loras.take_retired():
            self.seqs.forget_adapter(handle)
            self.loras.free(handle)
            busy = {row.slot for row in self._rows}
            for slot in range(self.max_batch):
                if self._cached_adapter[slot] == name and slot not in busy:
                    self.seqs.drop(slot)
                    self._cached[slot], self._cached_adapter[slot] = [], None


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _tokenizer_eos(tokenizer: Any) -> set[int]:
    eos = tokenizer.eos_token_id
    return {int(eos)} if isinstance(eos, int) else set()


def gguf_type(llama_cpp: ModuleType, metadata: dict[str, str]) -> str:
    """The GGUF's weight type as llama.cpp names it ("q4_1", from ``general.file_type``):
    what the answers' ledger rows record as quantization, not the torch model's NF4."""
    value = metadata.get("general.file_type")
    for name in sorted(dir(llama_cpp)):
        if name.startswith("LLAMA_FTYPE_") and str(getattr(llama_cpp, name)) == value:
            kind = name.removeprefix("LLAMA_FTYPE_").removeprefix("MOSTLY_")
            return kind.removeprefix("ALL_").lower()
    return "gguf"  # a type this llama.cpp does not name


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
                           max_queue=settings.max_queue, decode_threads=settings.decode_threads,
                           max_batch=settings.max_batch)
