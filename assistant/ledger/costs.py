"""The cost model: what one answer (or one adapter training) is estimated to cost, in USD.

Two parts, both configurable in settings, added into one total:

* token cost   = prompt_tokens  x input price  / 1M
               + completion_tokens x output price / 1M
  The price a hosted API would charge for a model of the same size class. It makes
  strategies comparable by what they *consume*: retrieval inflates the prompt, an
  adapter keeps it short, and this term shows that even on free hardware.
* compute cost = wall seconds x hourly hardware price / 3600
  What the machine serving (or training) costs while it works; this is where a slow
  strategy pays. Training has no token term: it is priced by compute time alone.

Set one part to zero (e.g. ``ASSISTANT_COST_INPUT_PER_MTOK=0``) to use only the other view.
All defaults below are ASSUMPTIONS, approximations of typical list prices at the time
of writing, not quotes; they exist so numbers are non-zero and comparable out of the box.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from assistant.settings import Settings

# USD per hour for named hardware presets. Approximations of typical hosted prices
# (e.g. HuggingFace Spaces tiers); override with ASSISTANT_COST_PER_HOUR.
HARDWARE_PRESETS: dict[str, float] = {
    "cpu-free": 0.0,  # a free CPU Space: costs nothing, but is slow and shared
    "cpu-upgrade": 0.03,  # a paid CPU Space (more cores and memory); the default
    "gpu-small": 0.40,  # a small GPU instance (T4 class)
}

# USD per 1M (input, output) tokens per registry base model. ASSUMPTION: hosted APIs
# rarely list models this small; we take a fraction of the cheapest small-model API
# prices seen (cents per 1M tokens), scaled roughly with parameter count, with output
# priced at 2x input as most providers do (decoding is sequential and slower).
TOKEN_PRICES: dict[str, tuple[float, float]] = {
    "smollm2-135m": (0.02, 0.04),
    "gemma3-270m": (0.04, 0.08),  # ~2x the parameters of smollm2-135m
}
# Unknown base models (local directories, hub ids) use the smallest tier: a guess
# that keeps numbers non-zero; set ASSISTANT_COST_*_PER_MTOK for a real price.
DEFAULT_TOKEN_PRICE: tuple[float, float] = (0.02, 0.04)


@dataclass(frozen=True)
class CostBreakdown:
    """One estimate; ``total_usd`` is always ``token_usd + compute_usd``."""

    token_usd: float
    compute_usd: float
    total_usd: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def token_prices(base_model: str | None, settings: Settings) -> tuple[float, float]:
    """(input, output) USD per 1M tokens: the settings override, else the model's table entry."""
    s = settings
    table_in, table_out = TOKEN_PRICES.get(base_model or "", DEFAULT_TOKEN_PRICE)
    price_in = table_in if s.cost_input_per_mtok is None else s.cost_input_per_mtok
    price_out = table_out if s.cost_output_per_mtok is None else s.cost_output_per_mtok
    return price_in, price_out


def hourly_rate(settings: Settings) -> float:
    """USD per hour of hardware: ``cost_per_hour`` if set, else the ``cost_hardware`` preset."""
    s = settings
    if s.cost_per_hour is not None:
        return s.cost_per_hour
    return HARDWARE_PRESETS[s.cost_hardware]


def compute_cost(seconds: float, settings: Settings) -> float:
    """USD for ``seconds`` of wall time on the configured hardware."""
    return max(seconds, 0.0) * hourly_rate(settings) / 3600.0


def estimate(
    prompt_tokens: int,
    completion_tokens: int,
    seconds: float,
    base_model: str | None,
    settings: Settings,
) -> CostBreakdown:
    """The estimated cost of one answer; ``seconds`` is its total wall time."""
    price_in, price_out = token_prices(base_model, settings)
    token_usd = (max(prompt_tokens, 0) * price_in + max(completion_tokens, 0) * price_out) / 1e6
    compute_usd = compute_cost(seconds, settings)
    return CostBreakdown(token_usd, compute_usd, token_usd + compute_usd)


def training_cost(seconds: float, settings: Settings) -> float:
    """USD for training an adapter for ``seconds``: compute time only (no token term)."""
    return compute_cost(seconds, settings)


def describe(settings: Settings, base_model: str | None = None) -> dict:
    """The prices in force, so reports can state the assumptions behind their numbers."""
    s = settings
    model = base_model or s.base_model
    price_in, price_out = token_prices(model, s)
    return {
        "base_model": model,
        "input_usd_per_mtok": price_in,
        "output_usd_per_mtok": price_out,
        "hardware": s.cost_hardware if s.cost_per_hour is None else "custom",
        "usd_per_hour": hourly_rate(s),
    }
