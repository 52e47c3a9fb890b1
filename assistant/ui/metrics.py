"""The Metrics tab: latency, tokens and cost from the ledger, recent answers, CSV export,
and the blind arena's win rates per strategy (human preference, with intervals).

The summary and the per-mode plots pool every user's numbers (no text: anyone may see
them, and the tab says so); the table, the cost per answer and the CSV (questions, answers,
sessions, one row per answer) show only this visitor's own answers unless they are an admin
(``Access.reads_whole_ledger``), whatever the private-uploads setting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.evaluation import plots
from assistant.ui.common import MODE_LABELS, Context, figure, strategy_label, usd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TABLE_HEADERS = ["time (UTC)", "mode", "adapter", "question", "TTFT ms", "total ms",
                 "tok in", "tok out", "cost", "error"]
COLUMN_WIDTHS: list[str | int] = ["15%", "8%", "7%", "24%", "7%", "7%", "6%", "7%", "8%",
                                  "11%"]
RECENT = 50
WIN_HEADERS = ["strategy", "strength (Elo)", "95% interval", "battles", "wins", "losses",
               "ties", "both bad", "win rate"]


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
        csv_file = gr.File(label="Ledger CSV", interactive=False, visible=False,
                           elem_id="ledger-csv")
    wins = win_rates_section()

    def update(request: gr.Request) -> tuple[Any, ...]:
        return metrics_view(ctx, request)

    def download(request: gr.Request) -> Any:
        return gr.File(value=export_csv(ctx, request), visible=True)

    outputs = [summary, latency, tokens, cost, table]
    refresh.click(update, None, outputs, api_name="metrics")
    tab.select(update, None, outputs, api_visibility="private")
    export.click(download, None, csv_file, api_name="export_csv")

    def preferences() -> tuple[Any, ...]:
        return win_rates_view(ctx)

    refresh.click(preferences, None, wins, api_name="win_rates")
    tab.select(preferences, None, wins, api_visibility="private")


def own_sessions(ctx: Context, request: gr.Request | None) -> tuple[str, ...] | None:
    """The ledger sessions whose rows this visitor may read (None: all, for admins)."""
    visitor = ctx.visitor(request)
    return None if ctx.access.reads_whole_ledger(visitor) else visitor.ledger_sessions()


def metrics_view(ctx: Context, request: gr.Request | None) -> tuple[Any, ...]:
    ledger = ctx.services.ledger
    sessions = own_sessions(ctx, request)
    groups = by_mode(ledger.stats(by="mode"))
    summary = summary_markdown(ledger.summary()) + "\n\n" + scope_note(sessions is None)
    return (summary, plots.latency_figure(groups, "Latency by mode"),
            plots.tokens_figure(groups, "Tokens by mode"),
            cost_figure(ledger.rows(sessions=sessions)),
            table_rows(ledger.recent(RECENT, sessions=sessions)))


def scope_note(admin: bool) -> str:
    """Whose answers each part of the tab shows, said on the tab itself."""
    if admin:
        return ("<small>You are an admin: every figure, the recent answers and the CSV "
                "export cover every user's answers.</small>")
    return ("<small>The line above and the latency and token plots pool every user's "
            "answers: numbers only, no question or answer text. The cost per answer, the "
            "recent answers and the CSV export are yours only; the whole ledger is for "
            "admins (ASSISTANT_ADMINS).</small>")


def by_mode(stats: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ledger's per-mode stats keyed by the modes' display names, as the plots take them."""
    return {MODE_LABELS.get(s["group"], s["group"]): s for s in stats}


def summary_markdown(s: dict[str, Any]) -> str:
    if not s["count"]:
        return "No answers yet: ask something in the Chat or Compare tab."
    p50 = s["p50_total_ms"]
    quoted = s.get("quoted_rate")
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


# --- figures (latency and tokens: assistant.evaluation.plots, as the report's) ------------
def cost_figure(rows: list[dict]) -> Figure:
    """Cost of each successful answer (bars) and the running total (line), oldest first."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    fig, ax = figure(12.0, 3.2)
    ax.set_title("Cost per answer and cumulative cost", fontsize=10)
    costs = np.array([r["cost_usd"] or 0.0 for r in rows if not r["error"]])
    if not len(costs):
        plots.empty_plot(ax, "no answers yet")
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


# --- human preference: the blind arena's battles ----------------------------------------
def win_rates_section() -> list[Any]:
    """The win-rate components: [summary, table, plot]."""
    gr.Markdown("### Which strategy people prefer (blind arena)")
    summary = gr.Markdown(elem_id="win-rates-summary")
    table = gr.Dataframe(headers=WIN_HEADERS, label="Win rates per strategy",
                         interactive=False, elem_id="win-rates")
    plot = gr.Plot(label="Strength with 95% interval", show_label=False)
    return [summary, table, plot]


def win_rates_view(ctx: Context) -> tuple[Any, ...]:
    """Bradley-Terry strengths of the strategies from every visitor's arena votes (the
    votes carry no text, so everyone sees them)."""
    from assistant.ledger.preferences import win_rates

    battles = ctx.services.votes.battles()
    rows = win_rates(battles)
    if not rows:
        summary = "No arena votes yet: vote in **Compare → Blind arena**."
    else:
        votes = f"**{len(battles)}** blind vote{'s' if len(battles) != 1 else ''}"
        summary = (f"{votes}. Strength is a Bradley-Terry fit on the "
                   "Elo scale (1000 is average); ties and both-bad count half a win each.")
    return summary, win_rows(rows), win_rates_figure(rows)


def win_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [[strategy_label(r["strategy"]), r["rating"], _interval(r), r["battles"], r["wins"],
             r["losses"], r["ties"], r["both_bad"], f"{r['win_rate']:.0%}"] for r in rows]


def _interval(row: dict[str, Any]) -> str:
    if row["low"] is None or row["high"] is None:
        return "-"
    return f"{row['low']:.0f} to {row['high']:.0f}"


def win_rates_figure(rows: list[dict[str, Any]]) -> Figure:
    """Each strategy's strength as a point with its 95% interval, strongest on top."""
    fig, ax = figure(9.0, max(2.4, 0.5 * len(rows) + 1.4))
    ax.set_title("Strength with 95% interval (blind votes)", fontsize=10)
    if not rows:
        plots.empty_plot(ax, "no arena votes yet")
        return fig
    ordered = list(reversed(rows))
    y = list(range(len(ordered)))
    x = [r["rating"] for r in ordered]
    low = [r["rating"] - (r["low"] if r["low"] is not None else r["rating"]) for r in ordered]
    high = [(r["high"] if r["high"] is not None else r["rating"]) - r["rating"] for r in ordered]
    ax.errorbar(x, y, xerr=[low, high], fmt="o", color="tab:blue", capsize=4)
    ax.axvline(1000, color="grey", linestyle=":", linewidth=1)
    ax.set_yticks(y, [strategy_label(r["strategy"]) for r in ordered])
    ax.set_xlabel("strength (Elo scale; 1000 is average)")
    return fig


# --- export ----------------------------------------------------------------------------
def export_csv(ctx: Context, request: gr.Request | None) -> str:
    """A CSV of the ledger rows this visitor may read; the path for gr.File.

    Written to a fresh export folder that the file route serves to this visitor only
    (``files.Exports``): the rows hold questions and answers.
    """
    from assistant.ledger.store import csv_text

    rows = ctx.services.ledger.rows(sessions=own_sessions(ctx, request))
    path = ctx.exports.create(ctx.visitor(request), "strata-ledger.csv")
    path.write_text(csv_text(rows), encoding="utf-8", newline="")
    return str(path)
