"""Question likelihood from the in-process llama.cpp engine, for sentence re-ranking.

The score the local model's ``QuestionLikelihood`` computes (models/likelihood.py): the
mean log-probability of the question's tokens after each passage's scoring prompt
(``prompt_ids``), on the bare base model, here from llama.cpp's logits at every question
position. With it, an app served by llama.cpp re-ranks without loading the torch model.

Its own llama.cpp context over the engine's weights (llama.cpp shares a model's weights
between contexts, read-only): the engine's context belongs to its decoding worker, and
scoring there would have to pause every answer being decoded, or wait for them all. This
context never has an adapter applied. It is made on the first call (``warm``: at the
server's start) and kept; one lock lets one re-ranking use it at a time. It reads on the
engine's prompt threads (every core) when no answer is being decoded, which is when a
single visitor's re-ranking runs (before that visitor's answer); while the worker reads or
decodes others' answers, or a training job runs in the process (``busy``, asked before each
batch), on the engine's decode threads (default 1): llama.cpp's threads spin, so
more threads than free cores lose most of their speed (llamacpp.py's module doc). Each
score is one thread's sum either way, so the thread count does not change it.

The chat template's opening, the same in every row, is read once into sequence 0 and shared
with each row's sequence, as the local scorer shares its cache.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING

from assistant.errors import ScoresUnavailable
from assistant.models.likelihood import ChatTokenizer, prompt_ids
from assistant.text import common_prefix

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from assistant.backends.llamacpp_batch import Item, Sequences

# Room for the re-ranking of a question: the candidate sentences' prompts (each a few dozen
# tokens) share the template's opening; rows that do not fit together are scored in turns.
N_CTX = 1024
N_BATCH = 256  # tokens per llama.cpp batch: its scratch memory grows with this
SLOTS = 8  # sequences: the shared opening, and up to 7 rows at once
WARM_UP = "warm up"  # the question and passage ``warm`` reads


class LlamaLikelihood:
    """Mean log-probability of a question after each passage, from llama.cpp's base model."""

    def __init__(self, llama_cpp: ModuleType, model: object, n_vocab: int,
                 tokenizer: ChatTokenizer, threads: int, idle_threads: int = 0,
                 busy: Callable[[], bool] | None = None) -> None:
        self._llama_cpp, self._model, self.n_vocab = llama_cpp, model, n_vocab
        self.tokenizer, self.threads = tokenizer, threads
        # threads to read on while ``busy()`` (the engine decoding answers) is False
        self.idle_threads, self.busy = idle_threads or threads, busy or (lambda: True)
        self._seqs: Sequences | None = None
        self._lock = threading.Lock()

    def __call__(self, question: str, passages: list[str]) -> tuple[list[float], int]:
        asked = list(self.tokenizer(question, add_special_tokens=False)["input_ids"])
        if not asked or not passages:
            return [0.0] * len(passages), 0
        rows = [prompt_ids(self.tokenizer, passage) + asked for passage in passages]
        shared = common_prefix(rows, min(len(r) for r in rows) - 1)  # each row keeps a token
        if max(len(r) for r in rows) > N_CTX:
            raise ScoresUnavailable(f"a passage's scoring prompt exceeds {N_CTX} tokens")
        with self._lock:
            seqs = self._context()
            seqs.clear()
            try:
                totals = self._read(seqs, rows, shared, len(asked))
            finally:
                seqs.clear()
        return [t / len(asked) for t in totals], shared + sum(len(r) - shared for r in rows)

    def warm(self) -> None:
        """Make the context and read one short row now: ``assistant serve`` calls it at
        start when re-ranking is on, so the first visitor's re-rank does not pay for the
        context and the first batch's buffers. Leaves no cells behind (scores unchanged)."""
        self(WARM_UP, [WARM_UP])

    def _context(self) -> Sequences:
        from assistant.backends.llamacpp_batch import Sequences

        if self._seqs is None:
            self._seqs = Sequences(self._llama_cpp, self._model, self.n_vocab, N_CTX, SLOTS,
                                   self.threads, self.threads, n_batch=N_BATCH)
        return self._seqs

    def _read(self, seqs: Sequences, rows: list[list[int]], shared: int, n: int) -> list[float]:
        """Each row's summed log-probability of its last ``n`` tokens: the opening in
        sequence 0, then the rows' rests in turns of sequences 1.. that share it."""
        totals = [0.0] * len(rows)
        # position p predicts token p + 1: row r's question is predicted from start_r - 1 on
        wanted = [range(len(r) - n - 1, len(r) - 1) for r in rows]
        opening = [(rows[0][p], p, 0, any(p in w for w in wanted)) for p in range(shared)]
        for log_probs, (_, position, _, _) in self._decode(seqs, opening):
            for r, row in enumerate(rows):  # the opening's tokens are every row's
                if position in wanted[r]:
                    totals[r] += float(log_probs[row[position + 1]])
        for turn in _turns(rows, shared):
            items: list[Item] = []
            for slot, r in enumerate(turn, start=1):
                seqs.share(0, slot, shared)
                items += [(rows[r][p], p, slot, p in wanted[r])
                          for p in range(shared, len(rows[r]))]
            for log_probs, (_, position, slot, _) in self._decode(seqs, items):
                row = rows[turn[slot - 1]]
                totals[turn[slot - 1]] += float(log_probs[row[position + 1]])
            for slot in range(1, len(turn) + 1):
                seqs.drop(slot)
        return totals

    def _decode(self, seqs: Sequences, items: list[Item]
                ) -> Iterator[tuple[npt.NDArray[np.float64], Item]]:
        """Decode ``items`` in batches; yield the log-probabilities after each item that
        wants logits, with the item."""
        for start in range(0, len(items), N_BATCH):
            chunk = items[start:start + N_BATCH]
            seqs.threads = self.threads if self.busy() else self.idle_threads  # per batch
            seqs.decode(chunk, prefill=True)
            for index, item in enumerate(chunk):
                if item[3]:
                    yield _log_softmax(seqs.logits(index)), item


def _turns(rows: list[list[int]], shared: int) -> list[list[int]]:
    """Row indices in groups whose cells fit the context beside the shared opening."""
    turns: list[list[int]] = [[]]
    used = shared
    for r, row in enumerate(rows):
        need = len(row) - shared
        if turns[-1] and (used + need > N_CTX or len(turns[-1]) == SLOTS - 1):
            turns.append([])
            used = shared
        turns[-1].append(r)
        used += need
    return turns


def _log_softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    import numpy as np

    values = logits.astype(np.float64)
    top = values.max()
    return values - (top + np.log(np.exp(values - top).sum()))
