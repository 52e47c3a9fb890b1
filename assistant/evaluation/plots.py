"""The plots of per-mode aggregates, drawn the same for the Metrics tab and the report.

Both hand in ``{group label: summary}`` with the metrics table's names
(``assistant.ledger.metrics``): the tab from the ledger's stats, the report from the
evaluation's per-mode summary. Bare matplotlib Figures, no pyplot global state, so drawing
is thread-safe under the web server; matplotlib loads only when a plot is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Groups = Mapping[str, Mapping[str, Any]]  # group label -> its summary

PLOTS = {  # file stem -> title (the report's image alt texts read these too)
    "accuracy_vs_cost": "Fact recall against cost per answer",
    "latency": "Latency per mode",
    "tokens": "Tokens per answer",
}


def figure(width: float = 6.4, height: float = 4.2) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def empty_plot(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _bars(ax: Axes, groups: Groups, series: list[tuple[str, str, float]], stacked: bool) -> None:
    """One bar (or stack) per group and series (key, legend label, scale)."""
    import numpy as np

    x = np.arange(len(groups))
    width = 0.8 if stacked else 0.8 / len(series)
    bottom = np.zeros(len(groups))
    for i, (key, label, scale) in enumerate(series):
        values = np.array([(s.get(key) or 0.0) * scale for s in groups.values()], dtype=float)
        offset = 0 if stacked else (i - (len(series) - 1) / 2) * width
        bars = ax.bar(x + offset, values, width, bottom=bottom if stacked else None, label=label)
        if stacked:
            bottom += values
    if stacked:  # the total on top of each stack
        ax.bar_label(bars, labels=[f"{v:.0f}" for v in bottom], padding=2)
    ax.set_xticks(x, [f"{g}\n(n={s.get('count', 0)})" for g, s in groups.items()])
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")


def latency_figure(groups: Groups, title: str = PLOTS["latency"]) -> Figure:
    """Median time to first token, median and p95 total time per group, in seconds."""
    fig = figure()
    ax = fig.add_subplot()
    groups = {g: s for g, s in groups.items() if s.get("p50_total_ms") is not None}
    if not groups:
        empty_plot(ax, "no answers yet")
        return fig
    _bars(ax, groups, [("p50_ttft_ms", "median TTFT", 1e-3), ("p50_total_ms", "median total", 1e-3),
                       ("p95_total_ms", "p95 total", 1e-3)], stacked=False)
    ax.set(ylabel="seconds", title=title)  # seconds read better than ms on CPU timescales
    return fig


def tokens_figure(groups: Groups, title: str = PLOTS["tokens"]) -> Figure:
    """Mean prompt and completion tokens per answer, stacked, per group."""
    fig = figure()
    ax = fig.add_subplot()
    groups = {g: s for g, s in groups.items() if s.get("mean_prompt_tokens") is not None}
    if not groups:
        empty_plot(ax, "no answers yet")
        return fig
    _bars(ax, groups, [("mean_prompt_tokens", "prompt (in)", 1.0),
                       ("mean_completion_tokens", "completion (out)", 1.0)], stacked=True)
    ax.set(ylabel="mean tokens per answer", title=title)
    return fig


def accuracy_vs_cost_figure(groups: Groups, title: str = PLOTS["accuracy_vs_cost"]) -> Figure:
    """Fact recall against mean cost per 1k answers, one point per group."""
    fig = figure()
    ax = fig.add_subplot()
    colours = {g: f"C{i}" for i, g in enumerate(groups)}  # same mode, same colour
    priced = [(g, s) for g, s in groups.items() if s.get("mean_cost_usd") is not None]
    for group, s in priced:  # a legend, not labels: close points made labels ambiguous
        y = s["recall"] if s.get("recall") is not None else 0.0
        ax.scatter(s["mean_cost_usd"] * 1000, y, s=60, color=colours[group], label=group)
    if priced:
        ax.legend(loc="upper left", fontsize=9)
    ax.set(xlabel="mean cost per 1k answers (USD)", ylabel="fact recall (in-scope)",
           title=title, ylim=(-0.1, 1.05))
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    return fig
