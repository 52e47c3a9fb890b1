"""The Metrics tab: latency, tokens and cost from the ledger, recent answers, CSV export.

With private uploads, the plots pool every visitor's numbers (no text), while the table and
the CSV (which hold questions and answers) show only this visitor's own, unless an admin.
"""

from __future__ import annotations

import csv
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.ui.common import MODE_LABELS, Context, empty_plot, figure, usd

TABLE_HEADERS = ["time (UTC)", "mode", "adapter", "question", "TTFT ms", "total ms",
                 "tok in", "tok out", "cost", "error"]
COLUMN_WIDTHS = ["15%", "8%", "7%", "24%", "7%", "7%", "6%", "7%", "8%", "11%"]
RECENT = 50


def build(ctx: Context, tab: gr.Tab) -> None:
    with gr.Row():
        summary = gr.Markdown(elem_id="metrics-summary")
        refresh = gr.Button("Refresh", scale=0, min_width=120)
    with gr.Row():
        latency = gr.Plot(label="Latency by mode", show_label=False)
        tokens = gr.Plot(label="Tokens by mode", show_label=False)
    cost = gr.Plot(label="Cost per answer and cumulative cost", show_label=False)
    table = gr.Dataframe(headers=TABLE_HEADERS, label="Recent answers", interactive=False,
                         column_widths=COLUMN_WIDTHS, elem_id="recent-answers")
    with gr.Row():
        export = gr.Button("Export CSV", scale=0, min_width=160)
        csv_file = gr.File(label="Ledger CSV", interactive=False, visible=False)

    def update(request: gr.Request) -> tuple[Any, ...]:
        return metrics_view(ctx, request)

    def download(request: gr.Request) -> Any:
        return gr.File(value=export_csv(ctx, request), visible=True)

    outputs = [summary, latency, tokens, cost, table]
    refresh.click(update, None, outputs, api_name="metrics")
    tab.select(update, None, outputs, api_visibility="private")
    export.click(download, None, csv_file, api_name="export_csv")


def own_rows(ctx: Context, request: Any, rows: list[dict]) -> list[dict]:
    """The rows whose text this visitor may read."""
    visitor = ctx.visitor(request)
    if not ctx.access.private or ctx.access.is_admin(visitor):
        return rows
    return [r for r in rows if r["session_id"] == visitor.session]


def metrics_view(ctx: Context, request: Any) -> tuple[Any, ...]:
    ledger = ctx.services.ledger
    rows = ledger.rows()
    recent = own_rows(ctx, request, ledger.recent(RECENT * 4))[:RECENT]
    return (summary_markdown(ledger.summary()), latency_figure(ledger.stats(by="mode")),
            tokens_figure(ledger.stats(by="mode")), cost_figure(rows), table_rows(recent))


def summary_markdown(s: dict[str, Any]) -> str:
    if not s["count"]:
        return "No answers yet: ask something in the Chat or Compare tab."
    p50 = s["p50_total_ms"]
    quoted = s.get("quoted_share")
    checked = ("" if quoted is None else
               f" · prompt/layered answers shown as quotes (the model's was unsupported): "
               f"{quoted:.0%}")
    return (f"**{s['count']}** answers ({s['errors']} failed) · median total "
            f"{(p50 or 0) / 1000:.2f} s · total cost **{usd(s['total_cost_usd'])}**{checked}")


def table_rows(rows: list[dict]) -> list[list[Any]]:
    out = []
    for r in rows:
        question = (r["question"] or "(not stored)").replace("\n", " ")
        out.append([
            r["created_at"][:19].replace("T", " "), r["chosen_mode"] or r["requested_mode"],
            r["adapter"] or "", question[:120], _round(r["ttft_ms"]), _round(r["total_ms"]),
            r["prompt_tokens"], r["completion_tokens"], usd(r["cost_usd"]), r["error"] or "",
        ])
    return out


def _round(value: float | None) -> Any:
    return round(value) if value is not None else "-"


# --- figures ---------------------------------------------------------------------------
def _bars(ax: Any, stats: list[dict], series: list[tuple[str, str]], stacked: bool) -> None:
    import numpy as np

    groups = [MODE_LABELS.get(g["group"], g["group"]) for g in stats]
    x = np.arange(len(groups))
    width = 0.8 if stacked else 0.8 / len(series)
    bottom = np.zeros(len(groups))
    for i, (key, label) in enumerate(series):
        values = np.array([g[key] or 0.0 for g in stats], dtype=float)
        offset = 0 if stacked else (i - (len(series) - 1) / 2) * width
        ax.bar(x + offset, values, width, bottom=bottom if stacked else None, label=label)
        if stacked:
            bottom += values
    ax.set_xticks(x, [f"{g}\n(n={s['count']})" for g, s in zip(groups, stats)])
    ax.legend(fontsize=8)


def latency_figure(stats: list[dict]) -> Any:
    fig, ax = figure()
    stats = [s for s in stats if s["p50_total_ms"] is not None]
    if not stats:
        empty_plot(ax, "no answers yet")
        return fig
    for s in stats:  # seconds read better than milliseconds on CPU timescales
        s["ttft_s"], s["total_s"] = (s["p50_ttft_ms"] or 0) / 1000, s["p50_total_ms"] / 1000
        s["p95_s"] = (s["p95_total_ms"] or 0) / 1000
    _bars(ax, stats, [("ttft_s", "median TTFT"), ("total_s", "median total"),
                      ("p95_s", "p95 total")], stacked=False)
    ax.set_ylabel("seconds")
    ax.set_title("Latency by mode", fontsize=10)
    return fig


def tokens_figure(stats: list[dict]) -> Any:
    fig, ax = figure()
    stats = [s for s in stats if s["mean_prompt_tokens"] is not None]
    if not stats:
        empty_plot(ax, "no answers yet")
        return fig
    _bars(ax, stats, [("mean_prompt_tokens", "prompt (in)"),
                      ("mean_completion_tokens", "completion (out)")], stacked=True)
    ax.set_ylabel("mean tokens per answer")
    ax.set_title("Tokens by mode", fontsize=10)
    return fig


def cost_figure(rows: list[dict]) -> Any:
    """Cost of each successful answer (bars) and the running total (line), oldest first."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    fig, ax = figure(12.0, 3.2)
    ax.set_title("Cost per answer and cumulative cost", fontsize=10)
    costs = np.array([r["cost_usd"] or 0.0 for r in rows if not r["error"]])
    if not len(costs):
        empty_plot(ax, "no answers yet")
        return fig
    x = np.arange(1, len(costs) + 1)
    ax.bar(x, costs * 1e6, color="tab:blue")
    ax.set_xlabel("answer number (oldest first)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("µUSD per answer", color="tab:blue")
    total = np.cumsum(costs)
    scale, unit = (1e6, "µUSD") if total[-1] < 0.01 else (1.0, "USD")
    line = ax.twinx()
    line.plot(x, total * scale, color="tab:orange", marker=".")
    line.set_ylabel(f"cumulative {unit}", color="tab:orange")
    line.set_ylim(bottom=0)
    return fig


# --- export ----------------------------------------------------------------------------
def export_csv(ctx: Context, request: Any) -> str:
    """A CSV of the ledger rows this visitor may read; the path for gr.File."""
    from assistant.ledger.store import ANSWER_COLUMNS

    rows = own_rows(ctx, request, ctx.services.ledger.rows())
    folder = Path(tempfile.gettempdir()) / "strata-exports"  # Gradio serves files from tmp
    folder.mkdir(exist_ok=True)
    key = hashlib.sha256(ctx.visitor(request).session.encode()).hexdigest()[:12]
    path = folder / f"strata-ledger-{key}.csv"  # one file per session, rewritten each time
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=ANSWER_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v
                             for k, v in row.items()})
    return str(path)
