"""One llama.cpp context that holds many answers at once: a sequence per answer in one
key/value cache, their tokens decoded together in multi-sequence batches.

llama.cpp attends within a sequence only, so rows never see each other; what they share is
each step's matrix products, which on these CPUs cost little more for a few rows than for
one (``python -m bench.run batching`` shows the same for the torch batcher). A LoRA adapter,
though, belongs to the whole context: the backend (llamacpp.py) decodes the rows of one
adapter together, then switches, so no row is ever computed under another's adapter.

Greedy answers equal the ones a request gets alone, with one exception measured here: with
an adapter, llama.cpp computes the LoRA's products for one row and for several rows with
different CPU kernels, which round differently (the base's 4-bit products do not), so an
adapter's answer whose two best next tokens are nearly tied can change with how many rows
shared its steps. Both kernels agree with the fp32 PEFT model as closely as each other.

The key/value cache is unified (``kv_unified``): its cells go to whichever sequence needs
them, so one long answer may use most of it while short ones share the rest. A sequence's
cells stay after its answer (its prompt may be the prefix of the next question: the system
prompt and passages repeat) until they are needed.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from assistant.errors import StrataError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Item = tuple[int, int, int, bool]  # (token, position, sequence, wants logits)


class Sequences:
    """A llama.cpp context for ``slots`` sequences sharing ``n_ctx`` cache cells."""

    def __init__(self, llama_cpp: ModuleType, model: object, n_vocab: int, n_ctx: int,
                 slots: int, threads: int, decode_threads: int, n_batch: int = 512) -> None:
        self._llama_cpp, self.n_vocab, self.n_ctx, self.n_batch = llama_cpp, n_vocab, n_ctx, n_batch
        self.slots, self.threads, self.decode_threads = slots, threads, decode_threads
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = n_ctx, n_batch, n_batch
        params.n_seq_max, params.kv_unified, params.no_perf = slots, True, True
        # Flash attention visits a row's own cells one by one and skips the others': a row's
        # attention then does not depend on where other rows' cells lie in the shared cache
        # (the plain path's vector sums over all cells did, and rounded differently).
        params.flash_attn = True
        params.n_threads, params.n_threads_batch = decode_threads, threads
        self.ctx = llama_cpp.llama_init_from_model(model, params)
        if not self.ctx:
            raise StrataError("llama.cpp could not create a context for concurrent answers")
        self._memory = llama_cpp.llama_get_memory(self.ctx)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._adapter: object | None = None  # the LoRA handle applied now (None: the bare base)

    def use_adapter(self, handle: object | None) -> None:
        """Apply ``handle`` (None: no adapter) to every token decoded from now on."""
        if handle is self._adapter:
            return
        self._llama_cpp.llama_clear_adapter_lora(self.ctx)
        self._adapter = None
        if handle is not None:
            if self._llama_cpp.llama_set_adapter_lora(self.ctx, handle, 1.0) != 0:
                raise StrataError("llama.cpp could not apply an adapter")
            self._adapter = handle

    def forget_adapter(self, handle: object) -> None:
        """``handle`` is about to be freed: never apply it again."""
        if handle is self._adapter:
            self.use_adapter(None)

    def decode(self, items: list[Item], prefill: bool) -> None:
        """Evaluate ``items`` (at most ``n_batch``) in one llama.cpp batch; a prompt reads
        on ``threads``, a step of several rows' single tokens on ``decode_threads``."""
        batch = self._batch
        for i, (token, position, sequence, logits) in enumerate(items):
            batch.token[i], batch.pos[i] = token, position
            batch.n_seq_id[i], batch.seq_id[i][0] = 1, sequence
            batch.logits[i] = logits
        batch.n_tokens = len(items)
        threads = self.threads if prefill else self.decode_threads
        self._llama_cpp.llama_set_n_threads(self.ctx, self.decode_threads, threads)
        code = self._llama_cpp.llama_decode(self.ctx, batch)
        if code == 1:
            raise CacheFull("llama.cpp's key/value cache has no room for this batch")
        if code != 0:
            raise StrataError(f"llama.cpp could not decode (llama_decode returned {code})")

    def logits(self, index: int) -> npt.NDArray[np.float32]:
        """The logits of the batch's ``index``-th item (a numpy view: read before the next
        decode)."""
        import numpy

        pointer = self._llama_cpp.llama_get_logits_ith(self.ctx, index)
        return numpy.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    def share(self, source: int, target: int, end: int) -> None:
        """Let ``target`` see ``source``'s cells before position ``end`` (the unified cache
        shares the cells: nothing is copied or computed again)."""
        self._llama_cpp.llama_memory_seq_cp(self._memory, source, target, 0, end)

    def drop(self, sequence: int, start: int = 0) -> None:
        """Free ``sequence``'s cells from position ``start`` on."""
        self._llama_cpp.llama_memory_seq_rm(self._memory, sequence, start, -1)

    def clear(self) -> None:
        self._llama_cpp.llama_memory_clear(self._memory, True)


class CacheFull(StrataError):
    """A batch found no free cells (the backend frees idle sequences' cells and retries)."""
