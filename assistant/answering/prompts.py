"""What the model is shown in each mode: system prompts and retrieved context.

A 135M model loses facts in long contexts: given four whole passages it often answers
from the wrong one. So prompt mode condenses what it shows: every retrieved passage is
split into sentences, the sentences are ranked against the question with the same
embedder that found the passages, and only the best ones, within a token budget, are
shown, still numbered by passage so the answer can cite [1], [2].
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

# split_sentences and is_heading are re-exported: callers have always found them here.
from assistant.retrieval.sentences import (  # noqa: F401
    Sentence,
    is_heading,
    passage_sentences,
    split_sentences,
)

if TYPE_CHECKING:
    from assistant.retrieval.sentences import SentenceVectors
    from assistant.retrieval.store import Hit


Message = dict[str, str]

RAG_SYSTEM = (
    "Answer the question from the numbered context. Copy names, numbers, codes and amounts "
    "exactly as written, and cite the passage like [1]. If the context does not contain the "
    "answer, say: \"The documents do not say.\""
)
# One worked example: a 135M model imitates a demonstration far better than it follows
# instructions (on the demo domain its fact recall was markedly lower without it;
# docs/evaluation.md).
RAG_EXAMPLE = (
    "Context:\n[1] (Library > Fees) The Riverside Library opens at 9:30 am on weekdays. "
    "Late returns cost 20p per day, up to a maximum of £4.80 per item.\n\n"
    "Question: What is the most you can be charged for one late item?",
    "The most you can be charged is £4.80 per item [1].",
)
BASE_SYSTEM = "You are a helpful assistant. Answer briefly."
DECLINE = "The documents do not say."

# Word overlap added to the embedding score: it puts the answer among the top sentences
# more often on the demo domain's held-out questions than the embedding alone.
KEYWORD_WEIGHT = 0.2
# Factoid questions are answered by a sentence carrying a specific the question lacks (a
# number, amount, code or name): such sentences get this bonus, and lead-ins ending in ":"
# ("Members are entitled to:") this penalty. Chosen on one half of the demo domain's held-out
# questions, checked on the other: the answer sentence is ranked first, and in the top 3,
# more often with them (what the context then holds: `python -m bench.run context`).
SPECIFIC_WEIGHT = 0.2
LEAD_IN_PENALTY = 0.1
_WORD = re.compile(r"[A-Za-z£€$0-9][\w£.,:/@'’-]*")
_DIGIT = re.compile(r"\d")
# Passages scoring this far below the best one are left out: the small model takes any
# sentence it is shown as a candidate answer, so weak passages are distractors.
PASSAGE_MARGIN = 0.2  # also keeps unrelated passages out of the sources a user sees


@dataclass
class ContextLine:
    passage: int  # 1-based number of the passage the sentence came from
    section: str  # the passage's heading path, shown once per passage
    text: str
    score: float
    position: int = 0  # the sentence's place in its passage, for reading order


def adds_specific(question: str, sentence: str) -> bool:
    """Whether ``sentence`` holds a number or a name (a capitalised word after its first)
    that the question does not already contain: what a factoid answer is made of."""
    asked = {w.lower().strip(".,:") for w in _WORD.findall(question)}
    for position, word in enumerate(_WORD.findall(sentence)):
        if word.lower().strip(".,:") in asked:
            continue
        if _DIGIT.search(word) or (position > 0 and word[0].isupper()):
            return True
    return False


def _candidates(hits: Sequence[Hit]) -> list[tuple[int, Sentence]]:
    """(passage number, sentence) for every candidate sentence of every hit."""
    return [(number, sentence) for number, hit in enumerate(hits, start=1)
            for sentence in passage_sentences(hit.text, hit.section)]


def rank_sentences(
    question: str,
    hits: Sequence[Hit],
    query_vector: Sequence[float],
    embed: Callable[[list[str]], list[list[float]]],
    stored: SentenceVectors | None = None,
) -> list[ContextLine]:
    """Every sentence of ``hits`` (passages within ``PASSAGE_MARGIN`` of the best), best first.

    Sentences are ranked with their heading ("Late payment: The fee is ...") so that a
    sentence that only makes sense under its heading still ranks right, plus a little
    for sharing the question's words (names and codes MiniLM misses) and for adding a
    specific the question lacks (``adds_specific``). Their vectors come from ``stored``
    (embedded at ingestion) where it has them; the rest are embedded with ``embed``.
    """
    import numpy as np

    from assistant.retrieval.lexical import tokens

    best = max((h.score for h in hits), default=0.0)
    candidates = [c for c in _candidates(hits) if hits[c[0] - 1].score >= best - PASSAGE_MARGIN]
    if not candidates or not question:
        return []
    texts = [sentence.ranked for _, sentence in candidates]
    if stored is not None:
        pairs = [(hits[n - 1].source, t) for (n, _), t in zip(candidates, texts, strict=True)]
        vectors = stored.vectors(pairs, embed)
    else:
        vectors = np.asarray(embed(texts), dtype=np.float32)
    asked = set(tokens(question))
    overlap = np.array([len(asked & set(tokens(t))) / max(len(asked), 1) for t in texts])
    specific = np.array([adds_specific(question, s.text) for _, s in candidates],
                        dtype=np.float32)
    lead_in = np.array([s.text.rstrip().endswith(":") for _, s in candidates], dtype=np.float32)
    scores = (vectors @ np.asarray(query_vector, dtype=np.float32) + KEYWORD_WEIGHT * overlap
              + SPECIFIC_WEIGHT * specific - LEAD_IN_PENALTY * lead_in)
    return [ContextLine(candidates[i][0], hits[candidates[i][0] - 1].section,
                        candidates[i][1].text, float(scores[i]), candidates[i][1].position)
            for i in np.argsort(-scores, kind="stable")]


def condense(
    ranked: Sequence[ContextLine],
    count_tokens: Callable[[str], int],
    max_tokens: int,
) -> list[ContextLine]:
    """The best of the ``ranked`` sentences (``rank_sentences``, maybe re-ranked) within
    ``max_tokens``, in reading order (passage, then position), so sentences that belong
    together stay so. The best one is shown even when it alone exceeds the budget (a long
    table row): without it the model answered from nothing."""
    chosen: list[ContextLine] = []
    used, sections_shown = 0, set()
    for line in ranked:
        cost = count_tokens(line.text) + 2
        if line.passage not in sections_shown:
            cost += count_tokens(line.section) + 4
        if chosen and used + cost > max_tokens:
            continue
        sections_shown.add(line.passage)
        chosen.append(line)
        used += cost
    return sorted(chosen, key=lambda line: (line.passage, line.position))


def format_context(lines: Sequence[ContextLine]) -> str:
    """Numbered context: one line per passage (its section, then its chosen sentences)."""
    blocks: dict[int, list[ContextLine]] = {}
    for line in lines:
        blocks.setdefault(line.passage, []).append(line)
    out = []
    for number, group in sorted(blocks.items()):
        section = f"({group[0].section}) " if group[0].section else ""
        out.append(f"[{number}] {section}" + " ".join(line.text for line in group))
    return "\n".join(out)


def rag_messages(question: str, context: str, system: str = RAG_SYSTEM) -> list[Message]:
    """A worked example, then context and question in the user turn, the question last."""
    user = f"Context:\n{context or '(no passages found)'}\n\nQuestion: {question}"
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": RAG_EXAMPLE[0]},
        {"role": "assistant", "content": RAG_EXAMPLE[1]},
        {"role": "user", "content": user},
    ]


def layered_messages(question: str, context: str, system: str) -> list[Message]:
    """The adapter's own turn (its system prompt, the bare question) with the passages as
    background in the system message.

    An adapter only saw "system prompt + question" in training; wrapping the question in
    prompt mode's context-and-example format made it forget what it knew (on the demo
    domain's held-out questions it scored below the adapter alone). In its own format it
    does not, and the passages it was given are still shown as sources (layered mode's
    figures: docs/evaluation.md).
    """
    notes = f"\n\nFrom the documents:\n{context}" if context else ""
    return [{"role": "system", "content": f"{system or BASE_SYSTEM}{notes}"},
            {"role": "user", "content": question}]


def plain_messages(question: str, system: str = BASE_SYSTEM) -> list[Message]:
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]
