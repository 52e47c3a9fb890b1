"""What every generation backend offers the pipeline, and the pieces they share.

The pipeline needs four things from whatever writes the answers: a streamed answer with
usage and timings (``TokenStream``, as the local ``Generator`` gives it), a token count for
the context budget, a name for the ledger, and, where it can, question likelihoods for
sentence re-ranking. Keeping it this small is what lets a remote server stand in for the
local model without the pipeline knowing which one answers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

from assistant.models.generation import Timings

if TYPE_CHECKING:
    import httpx

    from assistant.models.generation import Generation, Message, SamplingParams, TokenStream
    from assistant.settings import Settings

# Rough tokens for text when no tokenizer of the served model is on this machine: English
# averages about four characters per token in the BPE vocabularies of current models.
CHARS_PER_TOKEN = 4
ESTIMATE = f"estimate ({CHARS_PER_TOKEN} characters per token)"


class Backend(Protocol):
    """A generation backend (``local`` or ``openai``)."""

    name: str  # recorded in each ledger row
    token_counting: str  # "tokenizer" or ESTIMATE: how count_tokens counts

    def stream(self, messages: list[Message], params: SamplingParams | None = None,
               adapter: str | None = None) -> TokenStream:
        """Start an answer; iterate for text pieces, ``close()`` to stop, ``result`` at the end."""
        ...

    def generate(self, messages: list[Message], params: SamplingParams | None = None,
                 adapter: str | None = None) -> Generation:
        ...

    def count_tokens(self, text: str) -> int:
        ...

    def describe(self) -> dict[str, Any]:
        """What `assistant models` shows about the backend."""
        ...


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def timings(started: float, first: float | None, ended: float, completion_tokens: int
            ) -> Timings:
    """Timings as the local generator reports them: time to the first token, total, and
    decode speed after the first token (the prefill is not decoding)."""
    ttft = (first - started) if first else 0.0
    decode_s = ended - (first or ended)
    speed = (completion_tokens - 1) / decode_s if completion_tokens > 1 and decode_s > 0 else 0.0
    return Timings(ttft_ms=round(ttft * 1000, 2), total_ms=round((ended - started) * 1000, 2),
                   tokens_per_s=round(speed, 2))


def describe_settings(settings: Settings) -> dict[str, Any]:
    """The configured backend, from settings alone (nothing is loaded or contacted)."""
    if settings.backend == "openai":
        return {"name": "openai", "url": settings.backend_url,
                "model": settings.backend_model or settings.base_model,
                "load_adapters": settings.backend_load_adapters}
    return {"name": "local", "model": settings.base_model, "quant": settings.quant}


def detail(response: httpx.Response) -> str:
    """The server's own error message (OpenAI's error shape, or vLLM's plain text)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if not isinstance(body, dict):
        return str(body)[:300]
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    return str(error or body.get("message") or body.get("detail") or body)[:300]
