"""Streaming generation with usage and timings for every call.

A hand-written decode loop over the KV cache instead of ``model.generate``: it cuts the
per-token bookkeeping of ``generate`` (logits processors, stopping criteria, cache
checks), only computes last-position logits during prefill (a 1,000-token prompt would
otherwise multiply every position by the 49k-word output matrix), and lets us time the
first token exactly. A worker thread runs the loop and owns the model lock, so a
consumer that stops reading (a closed browser tab) never leaves the model locked.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from assistant.models.adapters import AdapterManager
    from assistant.settings import Settings

Message = dict[str, str]


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens. temperature 0 means greedy, which makes answers reproducible."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.1  # applied to the answer's own tokens only, see _penalise
    seed: int | None = None
    ignore_eos: bool = False  # benchmarks: always produce max_new_tokens

    @classmethod
    def from_settings(cls, settings: Settings) -> SamplingParams:
        return cls(
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.top_k,
            repetition_penalty=settings.repetition_penalty,
        )

    def with_(self, **changes: Any) -> SamplingParams:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Timings:
    ttft_ms: float = 0.0  # prompt in -> first answer token out (prefill + one step)
    total_ms: float = 0.0
    tokens_per_s: float = 0.0  # decode speed after the first token


@dataclass
class Generation:
    text: str
    usage: Usage
    timings: Timings
    finish_reason: str  # "stop" (end-of-sequence), "length" or "cancelled"
    adapter: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["usage"]["total_tokens"] = self.usage.total_tokens
        return data


class TokenStream:
    """Iterates over text pieces as they are generated; ``result`` is set at the end."""

    _DONE = object()

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self.cancelled = threading.Event()
        self.result: Generation | None = None

    def __iter__(self) -> Iterator[str]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop generating (the worker notices before its next token)."""
        self.cancelled.set()

    def wait(self) -> Generation:
        """Consume the rest of the stream and return the finished generation."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result


class Generator:
    """Chat-formatted, streamed generation on the base model with an optional adapter."""

    def __init__(self, adapters: AdapterManager, defaults: SamplingParams | None = None):
        self.adapters = adapters
        self.tokenizer = adapters.base.tokenizer
        self.defaults = defaults or SamplingParams()
        self.eos_ids = _eos_ids(adapters.base)

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
        out = TokenStream()
        worker = threading.Thread(
            target=self._run, args=(prompt_ids, params, adapter, out), daemon=True
        )
        worker.start()
        return out

    def generate(
        self,
        messages: list[Message],
        params: SamplingParams | None = None,
        adapter: str | None = None,
    ) -> Generation:
        return self.stream(messages, params, adapter).wait()

    def _run(self, prompt_ids: list[int], params: SamplingParams, adapter: str | None,
             out: TokenStream) -> None:
        try:
            with self.adapters.using(adapter) as model:
                out.result = self._decode(model, prompt_ids, params, out)
                out.result.adapter = adapter
        except BaseException as exc:  # surfaced to the consumer by TokenStream.__iter__
            out._queue.put(exc)
        finally:
            out._queue.put(TokenStream._DONE)

    def _decode(self, model: Any, prompt_ids: list[int], params: SamplingParams,
                out: TokenStream) -> Generation:
        import torch

        generator = _rng(params.seed)
        started = time.perf_counter()
        answer: list[int] = []
        text_so_far = ""
        ttft = 0.0
        finish = "length"
        with torch.inference_mode():
            step = model(
                input_ids=torch.tensor([prompt_ids], device=model.device),
                use_cache=True,
                logits_to_keep=1,
            )
            for _ in range(params.max_new_tokens):
                if out.cancelled.is_set():
                    finish = "cancelled"
                    break
                next_id = _pick(step.logits[0, -1], answer, params, generator)
                if next_id in self.eos_ids and not params.ignore_eos:
                    finish = "stop"
                    break
                answer.append(next_id)
                if not ttft:
                    ttft = time.perf_counter() - started
                text = self.tokenizer.decode(answer, skip_special_tokens=True)
                if not text.endswith("\ufffd"):  # wait for the rest of a multi-byte char
                    out._queue.put(text[len(text_so_far):])
                    text_so_far = text
                step = model(
                    input_ids=torch.tensor([[next_id]], device=model.device),
                    past_key_values=step.past_key_values,
                    use_cache=True,
                )
        total = time.perf_counter() - started
        text = self.tokenizer.decode(answer, skip_special_tokens=True)
        if text != text_so_far and text.startswith(text_so_far):
            out._queue.put(text[len(text_so_far):])
        decode_s = total - ttft
        return Generation(
            text=text,
            usage=Usage(len(prompt_ids), len(answer)),
            timings=Timings(
                ttft_ms=round(ttft * 1000, 2),
                total_ms=round(total * 1000, 2),
                tokens_per_s=round((len(answer) - 1) / decode_s, 2) if len(answer) > 1 else 0.0,
            ),
            finish_reason=finish,
        )


def _eos_ids(base: Any) -> set[int]:
    ids: set[int] = set()
    for source in (base.model.generation_config.eos_token_id, base.tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(source)
    return ids


def _rng(seed: int | None) -> Any:
    import torch

    if seed is None:
        return None
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def _pick(logits: Any, answer: list[int], params: SamplingParams, generator: Any) -> int:
    """Greedy when temperature is 0, else temperature/top-k/top-p sampling."""
    import torch

    logits = _penalise(logits.float(), answer, params.repetition_penalty)
    if params.temperature <= 0:
        return int(torch.argmax(logits))
    logits = logits / params.temperature
    if params.top_k:
        kth = torch.topk(logits, min(params.top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if params.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, 0) - sorted_p < params.top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))


def _penalise(logits: Any, answer: list[int], penalty: float) -> Any:
    """CTRL-style repetition penalty on tokens the answer already used.

    Only the answer's own tokens: penalising the prompt too (as ``generate`` does) would
    push the model away from copying facts out of retrieved passages.
    """
    import torch

    if penalty == 1.0 or not answer:
        return logits
    seen = torch.tensor(sorted(set(answer)), device=logits.device)
    values = logits[seen]
    logits = logits.clone()
    logits[seen] = torch.where(values > 0, values / penalty, values * penalty)
    return logits
