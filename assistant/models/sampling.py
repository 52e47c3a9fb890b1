"""How the next token is chosen: sampling parameters, greedy or temperature/top-k/top-p
picking, and the repetition penalty, shared by every local decode loop."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from assistant.settings import Settings


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
        """A copy with the given fields changed (a None leaves a field as it is); Any: the
        values may come from a request's JSON."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def rng_for(seed: int | None) -> torch.Generator | None:
    import torch

    if seed is None:
        return None
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def pick_token(logits: torch.Tensor, answer: list[int], params: SamplingParams,
               generator: torch.Generator | None) -> int:
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


def _penalise(logits: torch.Tensor, answer: list[int], penalty: float) -> torch.Tensor:
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
