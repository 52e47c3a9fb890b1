"""`assistant synth`: training pairs and held-out questions from a domain's own documents.

The argparse front end of ``assistant.training.from_domain`` (which the web app calls too)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from assistant.settings import get_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="make training pairs and held-out questions from a domain's documents",
        description="Find the sentences of domain D that state a fact (a number, a name, a "
        "date, a code), have the training questions written by the learned question writer "
        "(an adapter trained on people's questions about other documents; --writer rules: by "
        "rule; --writer model: rules plus --model-rewordings by the configured model), and "
        "keep the pairs whose answer holds the fact and whose question finds the fact's "
        "passage in the knowledge base. Held-out questions are always made by rule, so they "
        "are not in the training questions' generator's words. "
        "Writes train.jsonl (for `assistant train`), test.jsonl (held-out questions, worded "
        "differently, plus out-of-scope ones, for `assistant eval`) and report.json/report.md "
        "(what was kept and dropped, and why). The demo documents are ingested first when the "
        "knowledge base is empty.",
    )
    p.add_argument("--domain", required=True,
                   help="the documents' domain (see `assistant docs list`)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output folder (default: ASSISTANT_DATA_DIR/synth/DOMAIN)")
    p.add_argument("--writer", choices=("learned", "rules", "model"), default="learned",
                   help="who writes the training questions (default learned: the "
                   "question-writer adapter, through the configured backend)")
    p.add_argument("--writer-adapter", default=None, metavar="NAME",
                   help="the writer adapter to use (default: question-writer; "
                   "`make writer` retrains it from the bundled question files)")
    p.add_argument("--samples", type=int, default=6,
                   help="questions the learned writer is asked for per fact, before the "
                   "checks (6)")
    p.add_argument("--phrasings", type=int, default=3,
                   help="training questions kept per fact (3)")
    p.add_argument("--eval-share", type=float, default=0.5, metavar="S",
                   help="share of facts that get a held-out question (0-1; 0.5)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for the held-out choice and the model's sampling")
    p.add_argument("--model-rewordings", type=int, default=0, metavar="N",
                   help="up to N more training questions per fact, written by the configured "
                   "model (ASSISTANT_BACKEND / ASSISTANT_BASE_MODEL: point it at the largest "
                   "model you have) and kept only when they pass the checks (0: rules only)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="sampling temperature of the learned writer and of the model's "
                   "rewordings (0.8)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (the report's counts)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from assistant.cli import emit
    from assistant.errors import StrataError
    from assistant.services import Services
    from assistant.training.from_domain import default_dir, synthesize_domain

    if args.phrasings < 1:
        raise StrataError(f"--phrasings must be at least 1, not {args.phrasings}")
    if not 0.0 <= args.eval_share <= 1.0:
        raise StrataError(f"--eval-share must be between 0 and 1, not {args.eval_share}")
    if args.model_rewordings < 0:
        raise StrataError(f"--model-rewordings must be 0 or more, not {args.model_rewordings}")
    if args.samples < 1:
        raise StrataError(f"--samples must be at least 1, not {args.samples}")
    if args.writer == "model" and not args.model_rewordings:
        args.model_rewordings = 4
    services = Services(get_settings())
    out = args.out or default_dir(services.settings.data_dir, args.domain)
    report = synthesize_domain(services, args.domain, out, phrasings=args.phrasings,
                               eval_share=args.eval_share, seed=args.seed,
                               model_rewordings=args.model_rewordings,
                               temperature=args.temperature, writer=args.writer,
                               writer_adapter=args.writer_adapter, samples=args.samples)
    summary = {k: v for k, v in report.items() if k not in ("kept", "dropped")}
    emit(summary, args.json, _render)
    return 0


def _render(summary: dict[str, Any]) -> str:
    o = summary["held_out_overlap"]
    lines = [
        f"{summary['facts_kept']} facts kept of {summary['facts_found']} found in "
        f"{summary['passages']} passages of {summary['domain']}",
        f"  {summary['train_pairs']} training pairs, {summary['test_questions']} held-out "
        f"questions + {summary['out_of_scope_questions']} out of scope",
        f"  held-out overlap with training phrasings: mean {o['mean']}, max {o['max']}",
        "  dropped: " + ", ".join(f"{r} ({n})" for r, n in summary["dropped_by_reason"].items()),
    ]
    lines += [f"{name}: {path}" for name, path in summary["files"].items()]
    return "\n".join(lines)
