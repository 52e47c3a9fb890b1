"""Question likelihood from a server's prompt log-probabilities, for sentence re-ranking.

The local scorer (assistant/models/likelihood.py, ``QuestionLikelihood``) reads each
candidate sentence and scores how probable the question is after it. vLLM returns the
log-probability of every prompt token when asked (``prompt_logprobs`` on
/v1/completions), which is the same score from the served model: the same prompt, as
token ids built with the served model's tokenizer, with the adapters off. A server that
refuses the parameter or returns no such field cannot score; this raises
``ScoresUnavailable`` and the pipeline keeps the embedding ranking (and records that).

One request per sentence, and only when ``backend_prompt_logprobs`` is on: vLLM 0.32's CPU
build with LoRA enabled computes prompt log-probabilities with the batch's adapter indices,
so a prompt_logprobs request batched with any other request stops its engine (checked by
hand on this kind of machine: a scoring request beside a streaming answer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from assistant.errors import ScoresUnavailable
from assistant.models.likelihood import prompt_ids

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)


class ServerLikelihood:
    """Mean log-probability of a question after each passage, computed by the server."""

    def __init__(self, http: httpx.Client, model: str, tokenizer: Callable[[], Any],
                 enabled: bool = True) -> None:
        self.http, self.model, self.tokenizer = http, model, tokenizer
        # why the server cannot score, once known
        self.unsupported: str | None = (
            None if enabled else "off (ASSISTANT_BACKEND_PROMPT_LOGPROBS)")

    def __call__(self, question: str, passages: list[str]) -> tuple[list[float], int]:
        if self.unsupported:
            raise ScoresUnavailable(self.unsupported)
        tok = self.tokenizer()
        if tok is None:
            self._give_up("no local tokenizer of the served model to build the prompts")
        asked = list(tok(question, add_special_tokens=False)["input_ids"])
        if not asked or not passages:
            return [0.0] * len(passages), 0
        rows = [prompt_ids(tok, passage) + asked for passage in passages]
        scores, tokens = [], 0
        for row in rows:
            logprobs, read = self._prompt_logprobs(row)
            scores.append(_mean_logprob(logprobs, asked))
            tokens += read
        return scores, tokens

    def _prompt_logprobs(self, row: list[int]) -> tuple[list[Any], int]:
        import httpx

        body = {"model": self.model, "prompt": [row], "max_tokens": 1, "temperature": 0.0,
                "prompt_logprobs": 0}
        try:
            response = self.http.post("/completions", json=body)
        except httpx.TransportError as exc:  # this answer only: the next may get through
            raise ScoresUnavailable(f"the server did not answer ({exc})") from exc
        if response.status_code in (400, 404, 422):
            self._give_up(f"the server refused prompt_logprobs (HTTP {response.status_code})")
        if response.status_code != 200:
            raise ScoresUnavailable(f"HTTP {response.status_code} from the server")
        data = response.json()
        choices = data.get("choices") or [{}]
        if not choices[0].get("prompt_logprobs"):
            self._give_up("the server returned no prompt_logprobs")
        usage = data.get("usage") or {}
        return choices[0]["prompt_logprobs"], int(usage.get("prompt_tokens") or len(row))

    def _give_up(self, why: str) -> None:
        """Remember that this server cannot score, so later answers skip the request."""
        self.unsupported = why
        log.warning("sentence re-ranking falls back to the embedding ranking: %s", why)
        raise ScoresUnavailable(why)


def _mean_logprob(prompt_logprobs: list[Any], asked: list[int]) -> float:
    """Mean log-probability of the question's tokens, the last ``len(asked)`` positions.

    Each position holds {token id: {"logprob": ...}} for the prompt's own token (and the
    top alternatives when more were asked for); the first position is null.
    """
    tail = prompt_logprobs[-len(asked):]
    values = []
    for position, token in zip(tail, asked):
        entry = (position or {}).get(str(token))
        if entry is None:
            raise ScoresUnavailable("the server's prompt_logprobs miss a prompt token")
        values.append(float(entry["logprob"] if isinstance(entry, dict) else entry))
    return sum(values) / len(values)
