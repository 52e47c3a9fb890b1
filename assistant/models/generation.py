"""Chat-formatted, streamed generation on the local model, with usage and timings.

The prompt goes through the chat template; decoding happens in the continuous batcher
(assistant/models/batching.py), a hand-written loop over the KV cache instead of
``model.generate``: it cuts generate's per-token bookkeeping, computes only last-position
logits during prefill, times the first token exactly, and lets concurrent requests share
forward passes. A consumer that stops reading (a closed tab) leaves the batch at the next
token, and never holds the model.

The stream and sampling types live in stream.py and sampling.py; they are re-exported
here, where callers have always found them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assistant.models.batching import Batcher
from assistant.models.sampling import SamplingParams
from assistant.models.stream import Generation, Timings, TokenStream, Usage

if TYPE_CHECKING:
    from assistant.models.adapters import AdapterManager

__all__ = ["Generation", "Generator", "Message", "SamplingParams", "Timings", "TokenStream",
           "Usage"]

Message = dict[str, str]


class Generator:
    """Chat-formatted, streamed generation on the base model with an optional adapter."""

    def __init__(self, adapters: AdapterManager, defaults: SamplingParams | None = None,
                 max_batch: int = 8, max_queue: int = 32, decode_threads: int = 1):
        self.adapters = adapters
        self.tokenizer = adapters.base.tokenizer
        self.defaults = defaults or SamplingParams()
        self.eos_ids = _eos_ids(adapters.base)
        self.batcher = Batcher(adapters, self.tokenizer, self.eos_ids, max_batch, max_queue,
                               decode_threads)

    def encode_chat(self, messages: list[Message]) -> list[int]:
        """Token ids of the chat-templated prompt, ending where the answer begins."""
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        return list(ids)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def stream(
        self,
        messages: list[Message],
        params: SamplingParams | None = None,
        adapter: str | None = None,
    ) -> TokenStream:
        """Start generating in the background; iterate the stream for text pieces."""
        params = params or self.defaults
        prompt_ids = self.encode_chat(messages)
        if adapter is not None:
            self.adapters.check(adapter)  # refuse an unknown adapter before starting
        return self.batcher.submit(prompt_ids, params, adapter)

    def generate(
        self,
        messages: list[Message],
        params: SamplingParams | None = None,
        adapter: str | None = None,
    ) -> Generation:
        return self.stream(messages, params, adapter).wait()


def _eos_ids(base: Any) -> set[int]:
    ids: set[int] = set()
    base.ensure_weights()  # a deferred base (llama.cpp fell back) loads its weights now
    for source in (base.model.generation_config.eos_token_id, base.tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(source)
    return ids
