"""BM25 keyword scores over the chunks, to fuse with the dense (embedding) similarity.

Why: MiniLM misses questions whose decisive word is a name, a code or a rare term
("WC-12", "Mardle Green"). On the demo domain, adding a fraction of the normalised BM25
score to the cosine similarity (setting ``keyword_weight``) raised hit@4 on the held-out
questions for no extra embedding work. The index is derived from Chroma (never persisted
on its own), rebuilt lazily, and tokenises each chunk once per process.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    ["a", "am", "an", "and", "any", "are", "as", "at", "be", "been", "by", "can", "could", "do",
     "does", "for", "from", "had", "has", "have", "how", "i", "if", "in", "is", "it", "its", "me",
     "much", "many", "my", "of", "on", "or", "our", "should", "so", "that", "the", "their",
     "there", "this", "to", "was", "we", "were", "what", "when", "where", "which", "who", "will",
     "with", "would", "you", "your"]
)
_SUFFIXES = ("ingly", "edly", "ings", "ing", "ied", "ies", "ed", "es", "s", "ly")


def stem(word: str) -> str:
    """Crude suffix stripping: 'payments'/'paying' -> 'pay'. Enough to match word forms."""
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def tokens(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP]


class LexicalIndex:
    """BM25 (k1=1.2, b=0.75) over chunk texts keyed by chunk id, with a domain per chunk."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self._lock = threading.Lock()
        self._vocab: dict[str, int] = {}
        self._docs: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}  # id -> (terms, tfs, domain)
        self._matrix: tuple | None = None  # BM25 postings (see _build), rebuilt when dirty
        self._ids: list[str] = []
        self._domains = np.array([], dtype=object)

    def __len__(self) -> int:
        return len(self._docs)

    def ids(self) -> set[str]:
        return set(self._docs)

    def add(self, items: Iterable[tuple[str, str, str]]) -> None:
        """Add (id, text, domain) triples."""
        with self._lock:
            for chunk_id, text, domain in items:
                counts = Counter(tokens(text))
                terms = np.array(
                    [self._vocab.setdefault(t, len(self._vocab)) for t in counts], np.int64
                )
                self._docs[chunk_id] = (terms, np.array(list(counts.values()), np.float32), domain)
            self._matrix = None

    def remove(self, ids: Iterable[str]) -> None:
        with self._lock:
            for chunk_id in ids:
                self._docs.pop(chunk_id, None)
            self._matrix = None

    def _build(self) -> None:
        """Postings as CSC-like arrays: for term t, docs rows[ptr[t]:ptr[t+1]] with weights."""
        self._ids = list(self._docs)
        entries = [self._docs[i] for i in self._ids]
        self._domains = np.array([e[2] for e in entries], dtype=object)
        vocab = max(1, len(self._vocab))
        if not entries:
            self._matrix = (
                np.zeros(vocab + 1, np.int64),
                np.array([], np.int64),
                np.array([], np.float32),
            )
            return
        rows = np.concatenate([np.full(len(e[0]), n) for n, e in enumerate(entries)])
        cols = np.concatenate([e[0] for e in entries])
        tf = np.concatenate([e[1] for e in entries])
        lengths = np.array([e[1].sum() for e in entries], np.float32)
        df = np.bincount(cols, minlength=vocab).astype(np.float32)
        idf = np.log1p((len(entries) - df + 0.5) / (df + 0.5))
        norm = self.k1 * (1 - self.b + self.b * lengths / max(lengths.mean(), 1.0))
        weights = idf[cols] * tf * (self.k1 + 1) / (tf + norm[rows])
        order = np.argsort(cols, kind="stable")
        ptr = np.searchsorted(cols[order], np.arange(vocab + 1))
        self._matrix = (ptr, rows[order], weights[order].astype(np.float32))

    def search(
        self, query: str, n: int, domain: str | Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """Top ``n`` (id, score / best score) pairs: scores in (0, 1], best first.

        ``domain``: one domain or a list of them (chunks of other domains score 0)."""
        with self._lock:
            if self._matrix is None:
                self._build()
            matrix = self._matrix  # set by _build
            terms = [self._vocab[t] for t in set(tokens(query)) if t in self._vocab]
            if matrix is None or not terms or not self._ids:
                return []
            ptr, rows, weights = matrix
            scores = np.zeros(len(self._ids), np.float32)
            for t in terms:
                scores += np.bincount(
                    rows[ptr[t] : ptr[t + 1]],
                    weights[ptr[t] : ptr[t + 1]],
                    minlength=len(self._ids),
                ).astype(np.float32)
            if domain is not None:
                wanted = [domain] if isinstance(domain, str) else list(domain)
                scores = np.where(np.isin(self._domains, wanted), scores, 0.0)
            top = np.argsort(-scores)[:n]
            best = float(scores[top[0]]) if len(top) else 0.0
            if best <= 0:
                return []
            return [(self._ids[i], float(scores[i]) / best) for i in top if scores[i] > 0]
