"""A passage's sentences, and their vectors computed once at ingestion, not per question.

Prompt mode shows the model only the best sentences of the retrieved passages, ranked by
embedding similarity to the question (assistant/answering/prompts.py). Which sentences a
passage has, and the text each is ranked by (section, sub-heading, sentence), depend on
the passage alone, so ingestion embeds them with the passage and keeps the vectors here,
in a side table beside the chunks (SQLite under ``data_dir``), and a question only looks
them up instead of embedding every candidate sentence again.

Rows are keyed by the document's name (replaced when it is re-ingested, deleted with it,
so a deleted document leaves nothing behind) and by a hash of the embedding model and the
ranked text, so a stored vector can never be the wrong one: a changed sentence split or
model simply finds nothing. Whatever is not found (a store ingested before this table
existed, chunks written by another path, another host sharing a Chroma server) is
embedded at question time as before and stored then, so it is paid for once.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike

    Vectors = np.ndarray  # (texts, dimensions) float32, one row per text

log = logging.getLogger(__name__)

_HAS_DIGIT_OR_END = re.compile(r"\d|[.!?:;]\W*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9£$\"(])|\n+")
Embed = Callable[[list[str]], list[list[float]]]


@dataclass(frozen=True)
class Sentence:
    """One candidate sentence of a passage and the text it is ranked (embedded) by."""

    position: int  # its place among the passage's sentences, for reading order
    heading: str  # the sub-heading above it inside the chunk, "" if none
    text: str  # the sentence as shown to the model
    ranked: str  # "section: heading: sentence", what is embedded


def split_sentences(text: str) -> list[str]:
    """Sentences (and table rows / list items, which end at newlines) of a passage."""
    parts = (p.strip(" -*#\t") for p in _SENTENCE_END.split(text))
    return [p for p in parts if len(p) > 3]


def is_heading(line: str) -> bool:
    """A sub-heading inside a chunk ("Response time targets"): short, no digits, no full stop."""
    return len(line.split()) <= 6 and not _HAS_DIGIT_OR_END.search(line)


def passage_sentences(text: str, section: str) -> list[Sentence]:
    """The candidate sentences of one chunk. Sub-headings are not candidates themselves
    (shown as sentences they were copied as answers: "Lifeline Register") but rank the
    sentences under them; the ranked text carries them so that a sentence that only makes
    sense under its heading still ranks right."""
    body = text[len(section):] if section and text.startswith(section) else text
    heading, out = "", []
    for position, sentence in enumerate(split_sentences(body)):
        if is_heading(sentence):
            heading = sentence
            continue
        shown = sentence.replace("**", "")
        ranked = ": ".join(p for p in (section, heading, shown) if p)
        out.append(Sentence(position, heading, shown, ranked))
    return out


def ranked_texts(passages: Iterable[tuple[str, str]]) -> list[str]:
    """The distinct ranked texts of the sentences of (text, section) passages: what
    ingestion embeds (overlapping chunks repeat sentences; each is embedded once)."""
    return list(dict.fromkeys(s.ranked for text, section in passages
                              for s in passage_sentences(text, section)))


class SentenceVectors:
    """The side table of sentence vectors: written at ingestion, read per question."""

    def __init__(self, path: Path, model: str, collection: str = "") -> None:
        self.path, self.model, self.collection = Path(path), model, collection
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS sentence_vectors (collection TEXT NOT NULL, "
                       "source TEXT NOT NULL, key TEXT NOT NULL, vector BLOB NOT NULL, "
                       "PRIMARY KEY (collection, source, key))")
            db.execute("CREATE INDEX IF NOT EXISTS sentence_vectors_key ON sentence_vectors(key)")
            self._db = db
        return self._db

    def key(self, text: str) -> str:
        return hashlib.sha1(f"{self.model}\n{text}".encode()).hexdigest()

    # --- writing ---------------------------------------------------------------------------
    def replace(self, source: str, texts: Sequence[str], vectors: ArrayLike) -> None:
        """Make these the stored vectors of document ``source`` (its old ones go)."""
        with self._lock, self._connect() as db:
            db.execute("DELETE FROM sentence_vectors WHERE collection = ? AND source = ?",
                       (self.collection, source))
            self._insert(db, source, texts, vectors)

    def add(self, source: str, texts: Sequence[str], vectors: ArrayLike) -> None:
        with self._lock, self._connect() as db:
            self._insert(db, source, texts, vectors)

    def _insert(self, db: sqlite3.Connection, source: str, texts: Sequence[str],
                vectors: ArrayLike) -> None:
        import numpy as np

        blobs = np.asarray(vectors, dtype=np.float32)
        db.executemany("INSERT OR REPLACE INTO sentence_vectors VALUES (?, ?, ?, ?)",
                       [(self.collection, source, self.key(t), blobs[i].tobytes())
                        for i, t in enumerate(texts)])

    def forget(self, source: str) -> None:
        """Drop a deleted document's vectors (a failure is logged: the document is gone
        from the store either way, and its rows go when a document of that name does)."""
        try:
            with self._lock, self._connect() as db:
                db.execute("DELETE FROM sentence_vectors WHERE collection = ? AND source = ?",
                           (self.collection, source))
        except sqlite3.Error as exc:
            log.warning("could not drop the sentence vectors of %s (%s)", source, exc)

    # --- reading ---------------------------------------------------------------------------
    def lookup(self, texts: Sequence[str]) -> dict[str, Vectors]:
        """{text: vector} for the texts that have a stored vector."""
        import numpy as np

        keys = {self.key(t): t for t in texts}
        found: dict[str, Vectors] = {}
        with self._lock:
            db = self._connect()
            wanted = list(keys)
            for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
                part = wanted[start:start + 500]
                marks = ",".join("?" * len(part))
                for key, blob in db.execute(
                        f"SELECT key, vector FROM sentence_vectors WHERE key IN ({marks})", part):
                    found[keys[key]] = np.frombuffer(blob, dtype=np.float32)
        return found

    def vectors(self, pairs: Sequence[tuple[str, str]], embed: Embed) -> Vectors:
        """Vectors for (document, ranked text) pairs, in order: stored ones looked up, the
        rest embedded now with ``embed`` and stored under their document for next time."""
        import numpy as np

        texts = [text for _, text in pairs]
        try:
            found = self.lookup(texts)
        except sqlite3.Error as exc:  # an unreadable table costs speed, never the answer
            log.warning("sentence vectors unavailable (%s); embedding them now", exc)
            return np.asarray(embed(texts), dtype=np.float32)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            fresh = np.asarray(embed(missing), dtype=np.float32)
            found.update(zip(missing, fresh, strict=True))
            self._backfill(pairs, missing, fresh)
        return np.stack([found[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)

    def _backfill(self, pairs: Sequence[tuple[str, str]], missing: list[str],
                  fresh: Vectors) -> None:
        by_text = dict(zip(missing, fresh, strict=True))
        per_source: dict[str, list[str]] = {}
        for source, text in pairs:
            if text in by_text and text not in per_source.setdefault(source, []):
                per_source[source].append(text)
        try:
            for source, texts in per_source.items():
                self.add(source, texts, [by_text[t] for t in texts])
        except sqlite3.Error as exc:
            log.warning("could not store sentence vectors (%s)", exc)
