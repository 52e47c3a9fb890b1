"""`assistant writer`: (re)train the learned question writer from hand-written question files."""

from __future__ import annotations

import argparse
from pathlib import Path

from assistant.settings import get_settings

BUNDLED = ["knowledge/harrowgate-water", "knowledge/nimbus-thermostat"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "writer",
        help="train the question writer `assistant synth` uses, from hand-written questions",
        description="Locate the sentence behind every hand-written question of each domain "
        "folder (qa/train.jsonl and qa/test.jsonl: the pair's source document and "
        "must_contain strings), then train a LoRA adapter that turns such a sentence (and its "
        "section heading) into the question a person asked. `assistant synth --writer learned` "
        "uses it to write training questions for any other domain. The default writer is "
        "`assistant writer --name question-writer` on the two demo domains (`make writer`). "
        "The adapter has no router profile: it never answers users.",
    )
    p.add_argument("--domains", nargs="+", type=Path, default=[Path(d) for d in BUNDLED],
                   metavar="DIR", help="domain folders with docs/ and qa/ (default: the two "
                   "bundled demo domains)")
    p.add_argument("--name", default="question-writer", help="adapter name (question-writer)")
    p.add_argument("--epochs", type=int, default=2,
                   help="training epochs (2; validation loss may stop it after 1)")
    p.add_argument("--rank", type=int, default=None,
                   help="LoRA rank (default: ASSISTANT_TRAIN_RANK; the bundled writer used 16)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing adapter")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from assistant.cli import emit
    from assistant.commands.train import served_precision, train_recorded
    from assistant.errors import StrataError
    from assistant.training.loop import TrainConfig
    from assistant.training.writer import SYSTEM_PROMPT, write_training_file

    settings = get_settings()
    for domain in args.domains:
        if not (domain / "docs").is_dir() or not (domain / "qa").is_dir():
            raise StrataError(f"{domain}: a domain folder needs docs/ and qa/ (see "
                              "knowledge/README.md)")
    data = settings.data_dir / "writer" / f"{args.name}.jsonl"
    made = write_training_file(args.domains, data, settings.chunk_size, settings.chunk_overlap)
    if made["rows"] < 8:
        raise StrataError(f"only {made['rows']} questions could be located in their documents")
    config = TrainConfig.from_settings(
        settings, quant=served_precision(settings), epochs=args.epochs,
        system_prompt=SYSTEM_PROMPT, routable=False,
        description="writes the question a person would ask about a document sentence",
        val_fraction=0.05, patience=1,
        **({"rank": args.rank, "alpha": 2 * args.rank} if args.rank else {}))
    result = train_recorded(args.name, data, config, settings, args.overwrite,
                            not args.no_progress)
    payload = {"name": result.name, "path": str(result.path), "data": made,
               "seconds": result.card["seconds"], "epochs_run": result.card["epochs_run"],
               "best_val_loss": result.card["best_val_loss"]}
    emit(payload, args.json, lambda p: (
        f"question writer {p['name']} written to {p['path']}\n"
        f"  {p['data']['rows']} questions located in their documents: {p['data']['domains']}\n"
        f"  {p['epochs_run']} epochs in {p['seconds']:.0f} s, validation loss "
        f"{p['best_val_loss']}"))
    return 0
