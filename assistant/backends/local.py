"""The local backend: today's transformers + PEFT ``Generator`` in this process.

Nothing to run besides the app; the base model and its adapters are loaded here (see
assistant/models/generation.py and adapters.py). This wrapper only gives it the backend's
name and description; streaming, usage and timings are the generator's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.models.backend import QuestionScorer
    from assistant.models.generation import (
        Generation,
        Generator,
        Message,
        SamplingParams,
        TokenStream,
    )


class LocalBackend:
    """Generation by the in-process model; re-ranking uses its ``QuestionLikelihood``."""

    name = "local"
    token_counting = "tokenizer"
    scorer: QuestionScorer | None = None  # re-ranking: services builds QuestionLikelihood
    quantization: str | None = None  # the ledger records the base model's

    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    @property
    def defaults(self) -> SamplingParams:
        return self.generator.defaults

    def stream(self, messages: list[Message], params: SamplingParams | None = None,
               adapter: str | None = None) -> TokenStream:
        return self.generator.stream(messages, params, adapter=adapter)

    def generate(self, messages: list[Message], params: SamplingParams | None = None,
                 adapter: str | None = None) -> Generation:
        return self.stream(messages, params, adapter).wait()

    def count_tokens(self, text: str) -> int:
        return self.generator.count_tokens(text)

    def describe(self) -> dict[str, Any]:
        base = self.generator.adapters.base
        return {"name": self.name, "model": base.name, "quant": base.quant,
                "device": base.device, "token_counting": self.token_counting}
