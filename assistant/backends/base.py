"""What every generation backend offers the pipeline, and the pieces they share.

The pipeline needs four things from whatever writes the answers: a streamed answer with
usage and timings (``TokenStream``, as the local ``Generator`` gives it), a token count for
the context budget, a name for the ledger, and, where it can, question likelihoods for
sentence re-ranking. Keeping it this small is what lets a remote server stand in for the
local model without the pipeline knowing which one answers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from assistant.models.backend import Backend as Backend  # re-exported: the interface

if TYPE_CHECKING:
    import httpx

    from assistant.settings import Settings

# Rough tokens for text when no tokenizer of the served model is on this machine: English
# averages about four characters per token in the BPE vocabularies of current models.
CHARS_PER_TOKEN = 4
ESTIMATE = f"estimate ({CHARS_PER_TOKEN} characters per token)"


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def describe_settings(settings: Settings) -> dict[str, Any]:
    """The configured backend, from settings alone (nothing is loaded or contacted)."""
    if settings.backend == "openai":
        return {"name": "openai", "url": settings.backend_url,
                "model": settings.backend_model or settings.base_model,
                "load_adapters": settings.backend_load_adapters}
    if settings.backend == "llamacpp":
        return {"name": "llamacpp", "model": settings.base_model, "weights": "GGUF"}
    if settings.backend == "auto":  # backends/engine.py makes it llamacpp or local
        from assistant.backends.engine import local_quant

        return {"name": "auto", "model": settings.base_model,
                "engines": "llamacpp where it can answer, else local",
                "local_quant": local_quant(settings)}  # the torch base, for a fallback
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
