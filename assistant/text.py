"""Text matching shared by the answer check, the evaluation, training data and the ledger.

One definition of "the fact is in the answer" (``contains``: case-insensitive, numbers
whole), of a decline and of the specifics an answer states, so the check that replaces an
answer and the score that judges it never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# An answer that contains one of these (lower-cased, curly quotes made straight) declines.
# "do not say" is what prompts.DECLINE teaches; the rest are the usual ways a small model
# words "I don't know". Kept short on purpose: each phrase risks a false positive.
DECLINE_PHRASES = (
    "do not say", "does not say", "don't say", "doesn't say",
    "do not know", "don't know", "not in the documents", "not in the context",
    "cannot find", "can't find", "could not find", "no information",
    "not mentioned", "cannot answer", "can't answer", "unable to answer",
)
_CITATION = re.compile(r"\[\d+\]")
_NUMBER = re.compile(r"\d[\d,.:/]*")
# A capitalised word that does not open a sentence: a name ("Vasquez-Holm", "Skelby").
_NAME = re.compile(r"(?<![.!?:]\s)(?<!^)\b[A-Z][a-z]+(?:[-'’][A-Z]?[a-z]+)*")


def common_prefix(rows: Sequence[Sequence[object]], limit: int | None = None) -> int:
    """How many leading items all ``rows`` share (token ids, words), at most ``limit``
    (default: the shortest row's length)."""
    shortest = min(len(r) for r in rows) if rows else 0
    limit = shortest if limit is None else min(limit, shortest)
    n = 0
    while n < limit and all(r[n] == rows[0][n] for r in rows):
        n += 1
    return n


def normalise(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return re.sub(r"\s+", " ", text).lower()


def _whole(needle: str) -> re.Pattern[str]:
    """``needle`` as a case-insensitive pattern whose numbers do not run on into more digits."""
    pattern = re.escape(needle)
    if needle[:1].isdigit():
        pattern = r"(?<!\d)" + pattern
    if needle[-1:].isdigit():
        pattern += r"(?!\d)"
    return re.compile(pattern, re.IGNORECASE)


def contains(text: str, needle: str) -> bool:
    """Case-insensitive substring test; a number must not run on into more digits,
    so "23" is not found in "2023" and "148.50" not in "1148.50"."""
    needle = normalise(needle).strip()
    return bool(needle) and _whole(needle).search(normalise(text)) is not None


def find(text: str, needle: str) -> tuple[int, int] | None:
    """Where ``needle`` first occurs in ``text`` as ``contains`` would find it (same rules,
    without normalising, so the span indexes ``text`` itself); None when absent."""
    needle = needle.strip()
    found = _whole(needle).search(text) if needle else None
    return found.span() if found else None


def declines(text: str) -> bool:
    """Whether an answer declines to answer (see DECLINE_PHRASES)."""
    answer = normalise(text)
    return any(phrase in answer for phrase in DECLINE_PHRASES)


def specifics(text: str) -> list[str]:
    """Numbers and names stated in ``text`` (citations like [1] left out), in order."""
    text = _CITATION.sub(" ", text.strip())
    numbers = [n.rstrip(".,:/") for n in _NUMBER.findall(text)]
    return numbers + [m.group(0) for m in _NAME.finditer(text)]


def was_quoted(verdict: str | None) -> bool:
    """Whether a ledger/eval ``grounding`` verdict says the answer shown was quotes."""
    return verdict is not None and verdict.startswith("quoted")


def has_surrogates(text: str) -> bool:
    """Whether ``text`` holds a lone UTF-16 surrogate (JSON's "\\ud800" decodes to one):
    no UTF-8 encoder takes it, so tokenizers and SQLite fail on it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def storable(text: str, limit: int) -> str:
    """``text`` as a log or ledger may keep it: at most ``limit`` characters, lone
    surrogates replaced ("?"), so refused input never costs more than the limit."""
    text = text[:limit]
    return text.encode("utf-8", "replace").decode("utf-8") if has_surrogates(text) else text

