"""`assistant eval`: compare modes on a questions file (accuracy, latency, cost, break-even)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.evaluation.run import EVAL_MODES
from assistant.settings import get_settings

if TYPE_CHECKING:
    from assistant.evaluation.partial import Interrupted
    from assistant.services import Services


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="compare base/prompt/adapter/layered/auto on a questions file",
        description="Answer every question of FILE (JSONL: question, answer, must_contain, "
        "optional out_of_scope) in every mode through the normal pipeline (greedy, one ledger "
        "row per answer), score fact recall, similarity and declines, and write results.csv, "
        "summary.json, report.md and plots into DIR. With an adapter card, its eval field "
        "gets the scores. Each answer is saved in DIR/results.partial.jsonl as soon as it is "
        "scored; after a crash or Ctrl-C, run the same command with --resume to ask only "
        "the rest.",
    )
    p.add_argument("--questions", type=Path, metavar="FILE", help="JSONL questions")
    p.add_argument("--domain", metavar="D", help="without --questions: the held-out questions "
                   "synthesized from domain D's documents (ASSISTANT_DATA_DIR/synth/D/test.jsonl; "
                   "`assistant synth` runs first when it is missing)")
    p.add_argument("--conversations", type=Path, metavar="FILE",
                   help="JSONL conversations: follow-ups with and without their history")
    p.add_argument("--modes", default=",".join(EVAL_MODES),
                   help=f"comma list (default: {','.join(EVAL_MODES)})")
    p.add_argument("--adapter", help="adapter for adapter/layered/auto (default: the one named "
                   "like the questions' domain, or the only one)")
    p.add_argument("--limit", type=int, metavar="K", help="only the first K questions")
    p.add_argument("--max-new-tokens", type=int, default=64, help="answer length cap (64)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.add_argument("--resume", action="store_true",
                   help="finish the interrupted run whose answers DIR/results.partial.jsonl "
                   "holds: only the missing (or failed) answers are asked; refused when that "
                   "run had other questions, modes, adapter, --limit or --max-new-tokens. "
                   "Without it, a partial run in DIR is refused, not overwritten")
    p.add_argument("--no-card", action="store_true", help="leave the adapter card unchanged")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object (the summary)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from assistant.cli import emit
    from assistant.evaluation.partial import Interrupted
    from assistant.evaluation.run import evaluate, load_questions, parse_modes
    from assistant.retrieval.ingest import ensure_demo_knowledge
    from assistant.services import Services

    if args.conversations is not None or (args.questions is None and not args.domain):
        return run_conversations(args)
    parse_modes(args.modes)
    again = resume_command(args)  # before --domain D becomes its questions file
    services = Services(get_settings())
    note = None
    if args.questions is None:  # --domain D alone: the synthesized held-out set
        args.questions, note = synthesized_questions(services, args.domain)
    load_questions(args.questions, args.limit)  # fail fast, before any model loads
    ensure_demo_knowledge(services.settings, services.store)
    try:
        summary = evaluate(services, args.questions, args.out, modes=args.modes,
                           adapter=args.adapter, questions_note=note,
                           limit=args.limit, max_new_tokens=args.max_new_tokens,
                           update_card=not args.no_card, show_bar=not args.no_progress,
                           on_partial="resume" if args.resume else "refuse")
    except Interrupted as stop:
        return interrupted(stop, again, args.json)
    emit(summary, args.json, render)
    return 0


def resume_command(args: argparse.Namespace) -> str:
    """The command line that finishes this run after an interruption."""
    import shlex

    parts = ["assistant", "eval", *(["--questions", str(args.questions)] if args.questions
                                    else ["--domain", args.domain]), "--modes", args.modes]
    parts += ["--adapter", args.adapter] if args.adapter else []
    parts += ["--limit", str(args.limit)] if args.limit else []
    parts += ["--max-new-tokens", str(args.max_new_tokens)] if args.max_new_tokens != 64 else []
    parts += ["--out", str(args.out)]
    flags = {"--no-card": args.no_card, "--no-progress": args.no_progress, "--json": args.json}
    return shlex.join(parts + [flag for flag, on in flags.items() if on] + ["--resume"])


def interrupted(stop: Interrupted, again: str, as_json: bool) -> int:
    """Ctrl-C: say what was kept and the command that finishes the run; exit 130."""
    import json
    import sys

    print(f"interrupted: {stop.done} of {stop.total} answers are saved in {stop.partial}; "
          f"finish the run with:\n  {again}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": "interrupted", "answers_saved": stop.done,
                          "answers": stop.total, "partial": str(stop.partial),
                          "resume": again}))
    return 130


def synthesized_questions(services: Services, domain: str) -> tuple[Path, str]:
    """The domain's synthesized test.jsonl (made by `assistant synth` if missing) and the
    line the report prints about it."""
    from assistant.training.from_domain import default_dir, synthesize_domain

    folder = default_dir(services.settings.data_dir, domain)
    made = not (folder / "test.jsonl").is_file()
    if made:
        synthesize_domain(services, domain, folder)
    note = (f"Questions: {folder / 'test.jsonl'}, synthesized from the documents of domain "
            f"`{domain}` by `assistant synth`{' (made for this run)' if made else ''}; "
            f"see {folder / 'report.md'} for how they were made and checked.")
    return folder / "test.jsonl", note


def render(summary: dict[str, Any]) -> str:
    """The table, the verdict, the break-even and where the files are."""
    from assistant.evaluation.report import markdown_table

    lines = [summary["questions_note"], ""] if summary.get("questions_note") else []
    lines += [markdown_table(summary), ""]
    lines += [v["text"] for k, v in summary["verdict"].items() if k != "text"]
    lines += [f"Break-even: {summary['break_even']['text']}", ""]
    lines += [f"{name}: {path}" for name, path in summary["files"].items()]
    if summary.get("card"):
        lines.append(f"adapter card updated: {summary['card']}")
    return "\n".join(lines)


def run_conversations(args: argparse.Namespace) -> int:
    """`--conversations FILE`: follow-ups with and without their history (one file a run)."""
    from assistant.cli import emit
    from assistant.errors import StrataError
    from assistant.evaluation import conversations as conv
    from assistant.retrieval.ingest import ensure_demo_knowledge
    from assistant.services import Services

    if args.conversations is None or args.questions is not None:
        raise StrataError("give --questions FILE, --domain D or --conversations FILE (one per run)")
    if args.resume:
        raise StrataError("--resume finishes a --questions or --domain run; a --conversations "
                          "run starts afresh")
    conv.load_conversations(args.conversations)  # fail fast, before any model loads
    conv.parse_modes(args.modes)
    services = Services(get_settings())
    ensure_demo_knowledge(services.settings, services.store)
    summary = conv.evaluate_conversations(
        services, args.conversations, args.out, modes=args.modes, adapter=args.adapter,
        max_new_tokens=args.max_new_tokens, show_bar=not args.no_progress)
    emit(summary, args.json, conv.markdown)
    return 0
