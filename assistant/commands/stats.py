"""`assistant stats`: ledger aggregates per mode or adapter, as a table, JSON or CSV."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.ledger.votes import Votes

# The table's columns after "group": metrics (assistant/ledger/metrics.py), whose header
# (``short``) and format come from the metrics table.
COLUMNS = ["count", "errors", "p50_total_ms", "p95_total_ms", "p50_ttft_ms", "p95_ttft_ms",
           "mean_prompt_tokens", "mean_completion_tokens", "total_cost_usd",
           "quoted_rate"]  # quoted_rate: prompt/layered answers replaced by quotes


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "stats",
        help="ledger aggregates: latency, tokens and cost per mode or adapter",
        description="Aggregates of the answer ledger (data_dir/ledger.db, or the database "
        "ASSISTANT_DATABASE_URL names). Latency and token "
        "means use successful answers; counts and costs include failures.",
    )
    p.add_argument("--by", choices=["mode", "adapter"], default="mode", help="group by (mode)")
    p.add_argument("--since", metavar="T", help="only answers from T on: 30m, 1h, 7d or ISO date")
    p.add_argument("--csv", metavar="FILE", help="also write the matching rows as CSV")
    p.add_argument("--votes", action="store_true",
                   help="also human votes: arena win rates per strategy (Bradley-Terry, 95%% "
                   "bootstrap intervals) and likes/dislikes per mode and adapter")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from assistant.cli import emit
    from assistant.ledger import costs
    from assistant.ledger.store import parse_since
    from assistant.services import Services
    from assistant.settings import get_settings

    services = Services(get_settings())
    ledger = services.ledger
    since = parse_since(args.since) if args.since else None
    result: dict[str, Any] = {
        "ledger": ledger.location,
        "by": args.by,
        "since": since,
        "overall": ledger.summary(since),
        "groups": ledger.stats(args.by, since),
        "prices": costs.describe(services.settings),
    }
    if args.votes:
        result["votes"] = votes(services.votes)
    if args.csv:
        result["csv"] = {"path": args.csv, "rows": ledger.to_csv(args.csv, since)}
    emit(result, args.json, render)
    return 0


def votes(store: Votes) -> dict[str, Any]:
    """Win rates of the arena's battles and the feedback counts (assistant/ledger/votes.py)."""
    from assistant.ledger.preferences import win_rates

    battles = store.battles()
    return {"battles": len(battles), "win_rates": win_rates(battles),
            "feedback": store.feedback_counts()}


def _votes_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"arena: {result['battles']} battles"]
    if result["win_rates"]:
        lines.append(f"{'strategy':<28} {'rating':>7} {'95% interval':>15} {'won':>5} "
                     f"{'lost':>5} {'tie':>5} {'bad':>5} {'win rate':>8}")
    for r in result["win_rates"]:
        interval = f"{r['low']:.0f}-{r['high']:.0f}" if r["low"] is not None else "-"
        lines.append(f"{r['strategy']:<28} {r['rating']:>7.0f} {interval:>15} {r['wins']:>5} "
                     f"{r['losses']:>5} {r['ties']:>5} {r['both_bad']:>5} {r['win_rate']:>8.0%}")
    lines.append("feedback:" + ("" if result["feedback"] else " none yet"))
    lines += [f"  {f['strategy']:<26} {f['likes']:>4} likes {f['dislikes']:>4} dislikes "
              f"{f['comments']:>4} comments" for f in result["feedback"]]
    return lines


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _table(groups: list[dict[str, Any]]) -> list[str]:
    """Fixed-width lines: a header, then one line per group."""
    from assistant.ledger.metrics import METRICS

    table = [["group", *(METRICS[name].short for name in COLUMNS)]]
    for group in groups:
        table.append([str(group["group"]),
                      *(METRICS[name].show(group.get(name), unit=False) for name in COLUMNS)])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                      for i, (c, w) in enumerate(zip(row, widths))) for row in table]


def render(result: dict[str, Any]) -> str:
    """A fixed-width table, one line per group plus a total line."""
    since_text = f" since {result['since']}" if result["since"] else ""
    lines = [f"ledger {result['ledger']}" + since_text]
    if not result["overall"]["count"]:
        lines.append("no answers recorded yet")
    else:
        lines += _table([*result["groups"], {**result["overall"], "group": "all"}])
        for group in result["groups"]:
            if group.get("training_cost_usd"):
                per = group["training_cost_per_answer_usd"]
                lines.append(
                    f"adapter {group['group']}: training ${group['training_cost_usd']:.6f}, "
                    f"amortised {_cell(per, '${:.6f}')} per answer"
                )
    p = result["prices"]
    lines.append(
        f"prices: ${p['input_usd_per_mtok']}/1M in, ${p['output_usd_per_mtok']}/1M out, "
        f"{p['hardware']} ${p['usd_per_hour']}/h (estimates; see assistant/ledger/costs.py)"
    )
    if "votes" in result:
        lines += _votes_lines(result["votes"])
    if "csv" in result:
        lines.append(f"wrote {result['csv']['rows']} rows to {result['csv']['path']}")
    return "\n".join(lines)
