"""`assistant stats`: ledger aggregates per mode or adapter, as a table, JSON or CSV."""

from __future__ import annotations

import argparse
from typing import Any

# (header, key, format) of each table column; None values print as "-".
COLUMNS = [
    ("group", "group", "{}"),
    ("count", "count", "{}"),
    ("errors", "errors", "{}"),
    ("p50 ms", "p50_total_ms", "{:.0f}"),
    ("p95 ms", "p95_total_ms", "{:.0f}"),
    ("p50 ttft", "p50_ttft_ms", "{:.0f}"),
    ("p95 ttft", "p95_ttft_ms", "{:.0f}"),
    ("tok in", "mean_prompt_tokens", "{:.1f}"),
    ("tok out", "mean_completion_tokens", "{:.1f}"),
    ("cost $", "total_cost_usd", "{:.6f}"),
    ("quoted", "quoted_share", "{:.0%}"),  # prompt/layered answers replaced by quotes
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "stats",
        help="ledger aggregates: latency, tokens and cost per mode or adapter",
        description="Aggregates of the answer ledger (data_dir/ledger.db). Latency and token "
        "means use successful answers; counts and costs include failures.",
    )
    p.add_argument("--by", choices=["mode", "adapter"], default="mode", help="group by (mode)")
    p.add_argument("--since", metavar="T", help="only answers from T on: 30m, 1h, 7d or ISO date")
    p.add_argument("--csv", metavar="FILE", help="also write the matching rows as CSV")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from assistant.ledger import costs
    from assistant.cli import emit
    from assistant.ledger.store import parse_since
    from assistant.services import Services
    from assistant.settings import get_settings

    services = Services(get_settings())
    ledger = services.ledger
    since = parse_since(args.since) if args.since else None
    result: dict[str, Any] = {
        "ledger": str(ledger.path),
        "by": args.by,
        "since": since,
        "overall": ledger.summary(since),
        "groups": ledger.stats(args.by, since),
        "prices": costs.describe(services.settings),
    }
    if args.csv:
        result["csv"] = {"path": args.csv, "rows": ledger.to_csv(args.csv, since)}
    emit(result, args.json, render)
    return 0


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def render(result: dict[str, Any]) -> str:
    """A fixed-width table, one line per group plus a total line."""
    lines = [f"ledger {result['ledger']}" + (f" since {result['since']}" if result["since"] else "")]
    if not result["overall"]["count"]:
        lines.append("no answers recorded yet")
    else:
        table = [[h for h, _, _ in COLUMNS]]
        for group in [*result["groups"], {**result["overall"], "group": "all"}]:
            table.append([_cell(group.get(key), fmt) for _, key, fmt in COLUMNS])
        widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
        for row in table:
            cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
            lines.append("  ".join(cells))
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
    if "csv" in result:
        lines.append(f"wrote {result['csv']['rows']} rows to {result['csv']['path']}")
    return "\n".join(lines)
