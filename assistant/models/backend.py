"""The interface every generation backend offers the pipeline (implementations live in
assistant/backends/: the local generator, or an OpenAI-compatible server).

It sits with the models so the pipeline can name it without depending on any backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from assistant.models.generation import Generation, Message, SamplingParams, TokenStream

# (question, passages) -> (one score per passage, tokens read): the shape of
# assistant.answering.rerank.Scorer, spelled out here since models sit below answering
QuestionScorer = Callable[[str, list[str]], tuple[list[float], int]]


class Backend(Protocol):
    """A generation backend (``llamacpp``, ``local`` or ``openai``)."""

    name: str  # recorded in each ledger row
    token_counting: str  # "tokenizer" or ESTIMATE: how count_tokens counts

    @property
    def scorer(self) -> QuestionScorer | None:
        """Question likelihood for sentence re-ranking from this engine (llama.cpp's logits,
        a server's prompt log-probabilities); None: the local model's scores it."""
        ...

    @property
    def quantization(self) -> str | None:
        """The type of the weights this engine answers from when they are its own (llama.cpp's
        GGUF), for the ledger; None: the base model's."""
        ...

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
