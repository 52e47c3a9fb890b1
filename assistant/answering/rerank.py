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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from assistant.text import common_prefix

if TYPE_CHECKING:
    from assistant.answering.prompts import ContextLine
    from assistant.models.adapters import AdapterManager

QUESTION_PROMPT = "Passage: {passage}\nWrite a question that this passage answers."
# Weight of the mean log-probability (typically -1 to -4) against the embedding score
# (cosine + bonuses, typically 0.3 to 1.0). Chosen as the best of a sweep on half of the
# demo domain's held-out questions (smaller and larger weights, and the likelihood alone,
# put the answer in the 2 best sentences less often; `python -m bench.run context`).
WEIGHT = 0.1

class ScoresUnavailable(Exception):
    """A scorer cannot score here (a server that gives no prompt log-probabilities): the
    caller keeps the embedding ranking and records that it did."""


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


class QuestionLikelihood:
    """Mean log-probability of a question after each passage, from the bare base model.

    Runs under the adapter manager's lock with adapters off, so it never races a
    generation and scores the same whichever adapter is active.
    """

    def __init__(self, adapters: AdapterManager) -> None:
        self.adapters = adapters
        self.tokenizer = adapters.base.tokenizer

    def _prompt_ids(self, passage: str) -> list[int]:
        messages = [{"role": "user", "content": QUESTION_PROMPT.format(passage=passage)}]
        return list(self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])

    def __call__(self, question: str, passages: list[str]) -> tuple[list[float], int]:
        import torch

        asked = self.tokenizer(question, add_special_tokens=False)["input_ids"]
        if not asked or not passages:
            return [0.0] * len(passages), 0
        rows = [self._prompt_ids(p) + asked for p in passages]
        # The chat template's opening (system prompt, "Passage: ") is the same in every row:
        # read it once and share its cache (about a third of the tokens).
        shared = common_prefix(rows, min(len(r) for r in rows) - 1)  # each row keeps a token
        width = max(len(r) for r in rows) - shared
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([r[shared:] + [pad] * (width - len(r) + shared) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r) + shared) for r in rows])
        mask = torch.cat([torch.ones(len(rows), shared, dtype=mask.dtype), mask], dim=1)
        with self.adapters.using(None) as model, torch.inference_mode():
            device = model.device
            opening = model(input_ids=torch.tensor([rows[0][:shared]], device=device),
                            use_cache=True)
            cache = opening.past_key_values
            cache.batch_repeat_interleave(len(rows))
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           past_key_values=cache, use_cache=True).logits.float()
        opening_logits = opening.logits[0].float()
        scores = []
        n = len(asked)
        for row, tokens in enumerate(rows):
            # position j of the whole row predicts token j + 1; the question is the last n
            # tokens, so positions start - 1 ... start + n - 2 (in the opening or the rest)
            start = len(tokens) - n
            predicting = torch.cat([opening_logits[start - 1:shared],
                                    logits[row, max(start - 1 - shared, 0):start - 1 - shared + n]])
            log_probs = torch.log_softmax(predicting, dim=-1)
            scores.append(float(log_probs[torch.arange(n), torch.tensor(asked)].mean()))
        return scores, shared + sum(len(r) - shared for r in rows)


