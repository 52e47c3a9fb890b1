"""Question likelihood from the local model: how probable a question is after a passage.

The score ``assistant.answering.rerank`` re-ranks context sentences by ("Passage: ... Write
a question that this passage answers." -> mean log-probability of the question's tokens).
A server computes the same score from its prompt log-probabilities
(``assistant.backends.logprobs``), and the in-process llama.cpp engine from its logits
(``assistant.backends.llamacpp_likelihood``), with the same ``prompt_ids``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from assistant.text import common_prefix

if TYPE_CHECKING:
    from assistant.models.adapters import AdapterManager

QUESTION_PROMPT = "Passage: {passage}\nWrite a question that this passage answers."


class ChatTokenizer(Protocol):
    """What the scorers use of a tokenizer (transformers' tokenizers have it)."""

    def __call__(self, text: str, add_special_tokens: bool = ...) -> Mapping[str, Any]: ...

    def apply_chat_template(self, conversation: list[dict[str, str]], *,
                            add_generation_prompt: bool = ..., tokenize: bool = ...,
                            return_dict: bool = ...) -> Mapping[str, Any]: ...


def prompt_ids(tokenizer: ChatTokenizer, passage: str) -> list[int]:
    """The chat-templated scoring prompt for ``passage``, as token ids; every scorer reads
    the question after exactly these tokens, so their scores are the same quantity."""
    messages = [{"role": "user", "content": QUESTION_PROMPT.format(passage=passage)}]
    return list(tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])


class QuestionLikelihood:
    """Mean log-probability of a question after each passage, from the bare base model.

    Runs under the adapter manager's lock with adapters off, so it never races a
    generation and scores the same whichever adapter is active.
    """

    def __init__(self, adapters: AdapterManager) -> None:
        self.adapters = adapters
        self.tokenizer = adapters.base.tokenizer

    def __call__(self, question: str, passages: list[str]) -> tuple[list[float], int]:
        import torch

        asked = self.tokenizer(question, add_special_tokens=False)["input_ids"]
        if not asked or not passages:
            return [0.0] * len(passages), 0
        rows = [prompt_ids(self.tokenizer, p) + asked for p in passages]
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
