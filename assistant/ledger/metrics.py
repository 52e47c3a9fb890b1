"""The metrics vocabulary: every figure the ledger's stats, the evaluation's summary, the
report's verdict and the adapter card show, registered once with one name each.

Like lm-evaluation-harness's metric registry: a metric says which rows it reads (answered,
failed, in scope...), which value of a row, how the values aggregate and whether higher is
better, and every consumer computes, ranks and formats it from here instead of keeping its
own copy. It sits in the ledger's layer so the ledger, training and evaluation can all read it.

Latency and token figures use answered rows only (a failure's timing would skew them);
counts and the total cost include failures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assistant.text import was_quoted

Row = Mapping[str, Any]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are not None; None when there are none."""
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _checked(row: Row) -> bool:
    return not row.get("error") and row.get("grounding") not in (None, "unchecked")


# Which rows a metric reads. Ledger rows have no out_of_scope field: all are in scope.
ROWS: dict[str, Callable[[Row], bool]] = {
    "all": lambda r: True,
    "failed": lambda r: bool(r.get("error")),
    "answered": lambda r: not r.get("error"),
    "in_scope": lambda r: not r.get("error") and not r.get("out_of_scope"),
    "out_of_scope": lambda r: not r.get("error") and bool(r.get("out_of_scope")),
    "checked": _checked,  # prompt/layered answers the answer check judged
}

# One metric's value: a count, a number (None without values) or a tally of a text column.
MetricValue = float | dict[str, int] | None
# How the values (None left out) of the chosen rows become one figure.
AGGREGATES: dict[str, Callable[[list[Any]], MetricValue]] = {
    "count": len,  # rows chosen, whatever their values
    "sum": lambda values: float(sum(values)),
    "mean": mean,
    "share": lambda values: mean(float(bool(v)) for v in values),
    "p50": lambda values: percentile(values, 50),
    "p95": lambda values: percentile(values, 95),
    "tally": lambda values: dict(Counter(values)),
}


@dataclass(frozen=True)
class Metric:
    """One figure: what it reads, how it aggregates, which way is better, how it reads."""

    name: str
    label: str  # in prose: the verdict, the report
    short: str  # a table's column header
    aggregate: str  # a key of AGGREGATES
    column: str | None = None  # the row field read (None: "count" reads no field)
    rows: str = "answered"  # a key of ROWS
    higher_is_better: bool | None = None  # None: a count or tally, not ranked
    fmt: str = "{:.2f}"
    unit: str = ""
    scope: str = "answers"  # "answers": any answer row; "eval": needs the evaluation's scores
    derive: Callable[[Row], Any] | None = None  # a value computed from the row, not a column

    def compute(self, rows: Sequence[Row]) -> MetricValue:
        chosen = [r for r in rows if ROWS[self.rows](r)]
        if self.aggregate == "count":
            return len(chosen)
        read = self.derive or (lambda r: r.get(self.column or ""))
        return AGGREGATES[self.aggregate]([v for v in map(read, chosen) if v is not None])

    def show(self, value: object, unit: bool = True) -> str:
        """The value as people read it; "-" for None."""
        if value is None:
            return "-"
        return self.fmt.format(value) + (self.unit if unit else "")


def _table(*metrics: Metric) -> dict[str, Metric]:
    for m in metrics:  # a typo here would only show as a KeyError in some report later
        if m.aggregate not in AGGREGATES or m.rows not in ROWS or m.scope not in SCOPES:
            raise ValueError(f"metric {m.name}: unknown aggregate, rows or scope")
    return {m.name: m for m in metrics}


SCOPES = ("answers", "eval")
METRICS: dict[str, Metric] = _table(
    Metric("count", "answers", "count", "count", rows="all", fmt="{}"),
    Metric("errors", "failed answers", "errors", "count", rows="failed", fmt="{}"),
    Metric("in_scope", "in-scope questions answered", "in scope", "count", rows="in_scope",
           fmt="{}", scope="eval"),
    Metric("out_of_scope", "out-of-scope questions answered", "out of scope", "count",
           rows="out_of_scope", fmt="{}", scope="eval"),
    Metric("recall", "fact recall", "fact recall", "mean", "recall", "in_scope", True,
           scope="eval"),
    Metric("generated_recall", "fact recall of the model's own text", "own recall", "mean",
           "generated_recall", "in_scope", True, scope="eval"),
    Metric("similarity", "similarity", "similarity", "mean", "similarity", "in_scope", True,
           scope="eval"),
    Metric("decline_rate", "out-of-scope decline rate", "declines out-of-scope", "share",
           "declined", "out_of_scope", True, "{:.0%}", scope="eval"),
    Metric("false_decline_rate", "in-scope decline rate", "false declines", "share",
           "declined", "in_scope", False, "{:.0%}", scope="eval"),
    Metric("quoted_rate", "share of checked answers shown as quotes", "quoted", "share",
           rows="checked", fmt="{:.0%}", derive=lambda r: was_quoted(r.get("grounding"))),
    Metric("mean_prompt_tokens", "mean prompt tokens", "tok in", "mean", "prompt_tokens",
           fmt="{:.0f}"),
    Metric("mean_rerank_tokens", "mean re-ranking tokens", "tok rerank", "mean",
           "rerank_tokens", fmt="{:.0f}", scope="eval"),
    Metric("mean_completion_tokens", "mean completion tokens", "tok out", "mean",
           "completion_tokens", fmt="{:.0f}"),
    Metric("mean_tokens_per_s", "mean tokens per second", "tok/s", "mean", "tokens_per_s",
           higher_is_better=True, fmt="{:.1f}"),
    Metric("p50_ttft_ms", "p50 time to first token", "p50 ttft", "p50", "ttft_ms",
           higher_is_better=False, fmt="{:.0f}", unit=" ms"),
    Metric("p95_ttft_ms", "p95 time to first token", "p95 ttft", "p95", "ttft_ms",
           higher_is_better=False, fmt="{:.0f}", unit=" ms"),
    Metric("p50_total_ms", "p50 total latency", "p50 ms", "p50", "total_ms",
           higher_is_better=False, fmt="{:.0f}", unit=" ms"),
    Metric("p95_total_ms", "p95 total latency", "p95 ms", "p95", "total_ms",
           higher_is_better=False, fmt="{:.0f}", unit=" ms"),
    Metric("mean_cost_usd", "cost per answer", "$ per answer", "mean", "cost_usd",
           higher_is_better=False, fmt="${:.7f}"),
    Metric("mean_token_cost_usd", "token cost per answer", "$ tokens", "mean",
           "token_cost_usd", higher_is_better=False, fmt="${:.7f}"),
    Metric("mean_compute_cost_usd", "compute cost per answer", "$ compute", "mean",
           "compute_cost_usd", higher_is_better=False, fmt="${:.7f}"),
    Metric("total_cost_usd", "total cost", "cost $", "sum", "cost_usd", rows="all",
           higher_is_better=False, fmt="{:.6f}"),
    Metric("chosen_modes", "answers per chosen mode", "chosen modes", "tally", "chosen_mode",
           scope="eval"),
)
# The figures an adapter card keeps per mode (as "<mode>_<name>"), the adapter list shows.
CARD_METRICS = ("recall", "similarity", "decline_rate", "p50_total_ms", "mean_cost_usd")


def summarise(rows: Sequence[Row], scope: str = "answers") -> dict[str, Any]:
    """Every metric of ``scope`` over ``rows``, by its canonical name, in the table's order.

    ``answers`` (the ledger's stats) reads fields every answer row has; ``eval`` adds the
    evaluation's scores (recall, similarity, declines) and needs its rows.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown metrics scope {scope!r}; choose one of {SCOPES}")
    chosen = [m for m in METRICS.values() if scope == "eval" or m.scope == scope]
    return {m.name: m.compute(rows) for m in chosen}


def card_figures(per_mode: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The card's evaluation figures: ``<mode>_<metric>`` for each of CARD_METRICS."""
    result: dict[str, Any] = {}
    for mode, summary in per_mode.items():
        for name in CARD_METRICS:
            value = summary.get(name)
            result[f"{mode}_{name}"] = round(value, 8) if isinstance(value, float) else value
    return result
