"""Re-ranking the best context sentences by how well each one explains the question.

The embedder ranks sentences by topic: for "How much is the late payment fee?" every
sentence about late payment scores alike, and the one with the amount is often not first.
Query likelihood re-ranks the few best: the base language model reads each sentence and
scores how probable the question is after it ("Passage: ... Write a question that this
passage answers." -> mean log-probability of the question's tokens; Sachan et al. 2022,
"Improving Passage Retrieval with Zero-Shot Question Generation"). A sentence that
answers the question makes it likely; a sentence that only shares its topic less so.

The weight and the candidate count were chosen on one half of the demo domain's held-out
questions and checked on the other half and on a dev set of one training question per fact;
more candidates than the default did no better. The cost is one batched forward pass over
the candidates, the chat template's shared opening read once. How often the best sentences
hold the answer with and without re-ranking, and its time and tokens: docs/benchmarks.md
(`python -m bench.run context`); its effect on answers: docs/evaluation.md.

The scorers: the local model's (``assistant.models.likelihood.QuestionLikelihood``) or a
server's prompt log-probabilities (``assistant.backends.logprobs.ServerLikelihood``); one
that cannot score raises ``assistant.errors.ScoresUnavailable``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from assistant.answering.prompts import ContextLine

# Weight of the mean log-probability (typically -1 to -4) against the embedding score
# (cosine + bonuses, typically 0.3 to 1.0). Chosen as the best of a sweep on half of the
# demo domain's held-out questions (smaller and larger weights, and the likelihood alone,
# put the answer in the 2 best sentences less often; `python -m bench.run context`).
WEIGHT = 0.1

# (question, passages) -> (one score per passage, tokens the model read)
Scorer = Callable[[str, list[str]], tuple[list[float], int]]


def passage_text(line: ContextLine) -> str:
    """A sentence as the scorer reads it, with its section: "It costs £45" is about something."""
    return f"({line.section}) {line.text}" if line.section else line.text


def rerank(question: str, ranked: Sequence[ContextLine], score: Scorer, candidates: int,
           weight: float = WEIGHT) -> tuple[list[ContextLine], int]:
    """``ranked`` with its first ``candidates`` re-ordered by embedding score plus ``weight``
    x question likelihood; the rest follow unchanged. Returns the list (best first) and
    the number of tokens the scorer read (0 when nothing was re-ranked)."""
    top = list(ranked[:candidates])
    if len(top) < 2 or weight == 0:
        return list(ranked), 0
    likelihoods, tokens = score(question, [passage_text(line) for line in top])
    rescored = [dataclasses.replace(line, score=line.score + weight * value)
                for line, value in zip(top, likelihoods)]
    rescored.sort(key=lambda line: -line.score)
    return rescored + list(ranked[candidates:]), tokens
