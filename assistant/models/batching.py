"""Continuous batching on the local model: concurrent answers share forward passes.

One worker thread owns decoding. A new request is prefilled alone (its prompt in one
forward pass), then joins the running batch at the next token boundary: its KV cache is
left-padded to the batch's length and stacked onto it. Every step then feeds one token
per row, each row with its own adapter (PEFT's mixed-adapter batches, ``adapter_names``;
``__base__`` for none), its own sampling parameters, stop condition and stream (the
rules every token-picking engine shares: models/decoding.py). A row that finishes or is
cancelled leaves the batch at the next step, and padding no row needs is trimmed. On two
CPU cores a forward pass over eight rows costs little more than over one (see
docs/benchmarks.md), so this is where the throughput is.

Rows never see each other: the attention mask hides the padding and each row keeps its
own positions, so a greedy answer is the one the row would get alone in exact arithmetic (a
unit test holds eight concurrent requests over two adapters and the base to their serial
answers in fp32; the 4-bit and bf16 kernels round differently per batch shape, which the
batching benchmark measures).

Threads. Prefill (a whole prompt: large matrix products) runs on every intra-op thread the
process was given; decode steps (a few rows: many small products) run on ``decode_threads``
of them, by default one: from the worker thread, splitting each small product over two
cores cost more in coordination than it saved (measured with the decode and batching
benchmarks, docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from assistant.errors import QueueFull, StrataError
from assistant.models.decoding import Decoding, Detokenizer, Request, running_worker
from assistant.models.sampling import SamplingParams, pick_token
from assistant.models.stream import TokenStream

if TYPE_CHECKING:
    from assistant.models.adapters import AdapterManager

log = logging.getLogger(__name__)
BASE_ROW = "__base__"  # PEFT's name for "no adapter" in a mixed batch


class _Row(Decoding):
    """One request in the batch: its decoding, and where its cache ends."""

    length = 0  # tokens in this row's cache (its prompt + answer tokens fed so far)
    next_id = -1  # picked, not yet fed


class Batcher:
    """Queue + worker thread; ``submit`` returns the request's stream at once."""

    def __init__(self, adapters: AdapterManager, tokenizer: Detokenizer, eos_ids: set[int],
                 max_batch: int = 8, max_queue: int = 32, decode_threads: int = 1) -> None:
        import torch

        if max_batch < 1 or max_queue < 1:
            raise StrataError("max_batch and max_queue must be at least 1")
        self.adapters, self.tokenizer, self.eos_ids = adapters, tokenizer, eos_ids
        self.max_batch = max_batch
        # intra-op threads per phase (see the module doc); 0 = the process's own count
        self.prefill_threads = torch.get_num_threads()
        self.decode_threads = decode_threads or self.prefill_threads
        self._waiting: queue.Queue[Request] = queue.Queue(maxsize=max_queue)
        self._rows: list[_Row] = []
        self._cache: Any = None  # the batch's DynamicCache, rows along dim 0
        self._mask: Any = None  # (rows, cache length): 1 = a real token, 0 = padding
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.peak_batch = 0  # the largest batch so far (benchmarks report it)

    # --- the callers' side ---------------------------------------------------------------
    def submit(self, prompt_ids: list[int], params: SamplingParams,
               adapter: str | None) -> TokenStream:
        request = Request(prompt_ids, params, adapter)
        try:
            self._waiting.put_nowait(request)
        except queue.Full:
            raise QueueFull(f"the model is busy: {self._waiting.maxsize} requests are "
                            "already waiting; try again shortly") from None
        self._ensure_worker()
        return request.out

    @property
    def waiting(self) -> int:
        return self._waiting.qsize()

    @property
    def running(self) -> int:
        return len(self._rows)

    def _ensure_worker(self) -> None:
        with self._start_lock:
            self._worker = running_worker(self._worker, self._loop, "strata-batcher")

    # --- the worker ----------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            if not self._rows:
                self._guarded(self._admit, self._waiting.get())  # idle: wait for a request
            while len(self._rows) < self.max_batch and not self._waiting.empty():
                self._guarded(self._admit, self._waiting.get_nowait())
            if self._rows:
                self._guarded(self._step)

    def _guarded(self, work: Callable[..., None], *args: Request) -> None:
        """Run one step of the worker; a failure ends every row (and the request being
        admitted) with the error, never the worker, so no reader waits forever."""
        try:
            work(*args)
        except Exception as exc:  # noqa: BLE001  (surfaced to each reader)
            log.exception("batched generation failed")
            for request in [row.request for row in self._rows] + list(args):
                if request.out.result is None:
                    request.out.end(exc)
            self._rows, self._cache, self._mask = [], None, None

    def _admit(self, request: Request) -> None:
        row = _Row(request, self.tokenizer, self.eos_ids)
        if row.stopped():  # closed while it waited
            row.end()
            return
        try:
            cache = self._prefill(row)
        except Exception as exc:  # noqa: BLE001  (a bad adapter fails its request only)
            request.out.end(exc)
            return
        self._emit(row)
        if row.finish:
            return
        self._join(row, cache)
        self.peak_batch = max(self.peak_batch, len(self._rows))

    def _prefill(self, row: _Row) -> Any:
        """The row's prompt in one forward pass; its first token picked; its cache."""
        import torch

        request = row.request
        _threads(self.prefill_threads)
        with self.adapters.lock:
            model, names = self._model_for([request.adapter])  # loads outside inference mode
            with torch.inference_mode():
                # The last position as an index tensor, not ``logits_to_keep=1``: the slice
                # that gives is a strided view, and the output layer over a strided input
                # copied the whole (vocabulary x hidden) weight on every prefill.
                last = torch.tensor([len(request.prompt_ids) - 1], device=model.device)
                step = model(input_ids=torch.tensor([request.prompt_ids], device=model.device),
                             use_cache=True, logits_to_keep=last, **names)
        row.length = len(request.prompt_ids)
        self._pick(row, step.logits[0, -1])
        return step.past_key_values

    def _step(self) -> None:
        """Feed every row its picked token; pick each row's next one; drop finished rows."""
        import torch

        rows = self._rows
        ids = torch.tensor([[row.next_id] for row in rows])
        positions = torch.tensor([[row.length] for row in rows])
        self._mask = torch.cat([self._mask, torch.ones(len(rows), 1, dtype=torch.long)], dim=1)
        _threads(self.decode_threads)
        with self.adapters.lock:
            model, names = self._model_for([row.request.adapter for row in rows])
            with torch.inference_mode():
                step = model(input_ids=ids.to(model.device),
                             position_ids=positions.to(model.device),
                             attention_mask=self._mask.to(model.device),
                             past_key_values=self._cache, use_cache=True, **names)
        self._cache = step.past_key_values
        for index, row in enumerate(rows):
            row.length += 1
            self._pick(row, step.logits[index, -1])
            self._emit(row)
        self._drop([row for row in rows if row.finish])

    def _model_for(self, adapters: list[str | None]) -> tuple[Any, dict[str, Any]]:
        """The model and the forward's ``adapter_names`` for these rows (caller holds the
        adapter lock, so nothing is loaded or evicted meanwhile)."""
        from assistant.models.adapters import peft_key

        wanted = sorted({name for name in adapters if name})
        for name in wanted:
            self.adapters.ensure_resident(name, keep=wanted)
        model = self.adapters.peft_model()
        if model is None:  # no adapter was ever loaded: every row is the bare base
            self.adapters.base.ensure_weights()
            return self.adapters.base.model, {}
        return model, {"adapter_names": [peft_key(a) if a else BASE_ROW for a in adapters]}

    # --- per row -------------------------------------------------------------------------
    def _pick(self, row: _Row, logits: Any) -> None:
        if row.stopped():
            return
        row.accept(pick_token(logits, row.answer, row.request.params, row.rng))
        if row.answer:
            row.next_id = row.answer[-1]

    @staticmethod
    def _emit(row: _Row) -> None:
        row.emit()
        if row.finish:
            row.end()

    # --- the batch's cache ---------------------------------------------------------------
    def _join(self, row: _Row, cache: Any) -> None:
        """Stack the new row's cache under the batch's, left-padding the shorter side."""
        import torch

        mask = torch.ones(1, row.length, dtype=torch.long)
        if not self._rows:
            self._rows, self._cache, self._mask = [row], cache, mask
            return
        width = max(self._mask.shape[1], row.length)
        self._mask = torch.cat([_pad_left(self._mask, width), _pad_left(mask, width)])
        for mine, theirs in zip(self._cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_pad_left(mine.keys, width), _pad_left(theirs.keys, width)])
            mine.values = torch.cat([_pad_left(mine.values, width),
                                     _pad_left(theirs.values, width)])
        self._rows.append(row)

    def _drop(self, finished: list[_Row]) -> None:
        """Remove finished rows, then the padding columns no remaining row needs."""
        import torch

        if not finished:
            return
        keep = [i for i, row in enumerate(self._rows) if not row.finish]
        self._rows = [self._rows[i] for i in keep]
        if not self._rows:
            self._cache, self._mask = None, None
            return
        index = torch.tensor(keep)
        self._mask = self._mask[index]
        self._cache.batch_select_indices(index)
        unused = int((self._mask.sum(dim=0) == 0).long().cumprod(dim=0).sum())
        if unused:
            self._mask = self._mask[:, unused:]
            for layer in self._cache.layers:
                layer.keys, layer.values = layer.keys[:, :, unused:], layer.values[:, :, unused:]


def _threads(count: int) -> None:
    """Intra-op threads of the calling (worker) thread's next operations."""
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


def _pad_left(tensor: Any, width: int) -> Any:
    """``tensor`` with zeros before its sequence axis (dim -1 of a mask, -2 of keys/values)."""
    import torch

    axis = -1 if tensor.dim() == 2 else -2
    missing = width - tensor.shape[axis]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[axis] = missing
    return torch.cat([torch.zeros(shape, dtype=tensor.dtype, device=tensor.device), tensor],
                     dim=axis)

