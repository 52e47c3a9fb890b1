"""`assistant train`: a LoRA adapter from a JSONL/CSV file of question/answer pairs."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.cli import emit
from assistant.errors import TrainingDataError
from assistant.settings import get_settings

if TYPE_CHECKING:
    from assistant.settings import Settings
    from assistant.training.loop import TrainConfig, TrainResult


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a LoRA adapter from question/answer pairs",
        description="Train a LoRA adapter from a .jsonl or .csv file with 'question' and "
        "'answer' fields, on the weights that will serve it: the GGUF's 4-bit weights "
        "(dequantised) when llama.cpp answers or the local generator stands in for it, NF4 "
        "(QLoRA) with ASSISTANT_BACKEND=local; ASSISTANT_QUANT overrides. "
        "Defaults come from ASSISTANT_TRAIN_* settings.",
    )
    parser.add_argument("--name", required=True, help="adapter name (folder under adapters_dir)")
    parser.add_argument("--data", required=True, type=Path, help=".jsonl or .csv file")
    parser.add_argument("--base", help="base model (default: ASSISTANT_BASE_MODEL)")
    parser.add_argument("--epochs", type=int,
                        help="passes over the data (early stopping may end sooner)")
    parser.add_argument("--rank", type=int, help="LoRA rank r")
    parser.add_argument("--alpha", type=int, help="LoRA alpha (scale = alpha / rank)")
    parser.add_argument("--dropout", type=float, help="LoRA dropout")
    parser.add_argument("--targets", help="'all-linear' or a comma list, e.g. q_proj,v_proj")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps (0 = no cap)")
    parser.add_argument("--batch-size", type=int, help="examples per optimizer step")
    parser.add_argument("--seed", type=int, help="seed for the split, shuffling and LoRA init")
    parser.add_argument("--val-fraction", type=float, help="share held out for validation")
    parser.add_argument("--patience", type=int, help="epochs without improvement before stopping")
    parser.add_argument("--neftune", type=float, dest="neftune_alpha",
                        help="NEFTune noise on input embeddings while training (0 = off)")
    parser.add_argument("--description", help="what the adapter knows (router profile)")
    parser.add_argument("--profile", type=Path,
                        help="take description and example questions from this profile.json")
    parser.add_argument("--system-prompt",
                        help="system prompt to train with (and to send at inference); "
                        "default: 'You are the <subject> assistant. Answer briefly.'")
    parser.add_argument("--reading", action="store_true",
                        help="train an adapter that reads: each question with the passages "
                        "layered mode shows it (from the knowledge base; a fifth with the "
                        "fact's sentences removed), in layered mode's exact prompt")
    parser.add_argument("--domain", help="with --reading: search only this domain's documents")
    parser.add_argument("--spread", type=float, default=None, metavar="SHARE",
                        help="with --reading: share of pairs (0-1) drawn to show the fact "
                        "beside one or two other passages, its passage at any place, as "
                        "people's questions get it; a pair with no other passage in reach "
                        "keeps layered mode's own (the log counts both; default: "
                        "assistant/training/reading.py's SPREAD)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing adapter")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Before torch loads: idle OpenMP threads sleep instead of spinning. On a shared 2-core
    # machine spinning threads made training steps up to several times slower (measured).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from assistant.training.loop import TrainConfig

    if args.spread is not None and not args.reading:
        raise TrainingDataError("--spread shapes reading pairs: give it with --reading")
    if args.spread is not None and not 0.0 <= args.spread <= 1.0:
        raise TrainingDataError(f"--spread must be between 0 and 1, not {args.spread}")
    settings = get_settings()
    if args.base:
        settings = settings.model_copy(update={"base_model": args.base})
    description, examples = args.description, None
    if args.profile:
        profile = _read_profile(args.profile)
        description = description or profile.get("description")
        examples = profile.get("examples") or None
    config = TrainConfig.from_settings(
        settings, quant=served_precision(settings), epochs=args.epochs, rank=args.rank,
        alpha=args.alpha, dropout=args.dropout, targets=args.targets, lr=args.lr,
        max_steps=args.max_steps, batch_size=args.batch_size,
        seed=args.seed, val_fraction=args.val_fraction, patience=args.patience,
        neftune_alpha=args.neftune_alpha,
        description=description, examples=examples, system_prompt=args.system_prompt,
    )
    data = reading_file(settings, args.name, args.data, args.domain, config.seed,
                        not args.no_progress, args.spread) if args.reading else args.data
    result = train_recorded(args.name, data, config, settings, args.overwrite,
                            not args.no_progress)
    payload = {"name": result.name, "path": str(result.path), "card": result.card,
               "profile": result.profile}
    emit(payload, args.json, _render)
    return 0


def served_precision(settings: Settings) -> str:
    """The precision to train on: that of the weights the configured engine will serve the
    adapter on (backends/engine.py ``training_precision``), said in the log."""
    from assistant.backends import engine

    choice = engine.choose(settings)
    if choice.requested == "auto" and choice.engine == "llamacpp":
        choice = engine.check(settings)  # its logits check decides whether it will serve
    quant = engine.training_precision(settings, choice)
    logging.getLogger(__name__).info("training on %s weights: %s", quant, choice.line())
    return quant


def train_recorded(name: str, data: Path, config: TrainConfig, settings: Settings,
                   overwrite: bool, progress_bar: bool) -> TrainResult:
    """Train, with the run recorded in the ledger (its trainings table and costs)."""
    from assistant.ledger.store import Ledger, location
    from assistant.training.loop import train_adapter

    ledger = Ledger(location(settings), store_text=settings.ledger_store_text)
    try:
        return train_adapter(name, data, config, settings, ledger=ledger, overwrite=overwrite,
                             progress_bar=progress_bar)
    finally:
        ledger.close()


def reading_file(settings: Settings, name: str, data: Path, domain: str | None,
                 seed: int, progress_bar: bool = True, spread: float | None = None) -> Path:
    """``data``'s pairs with the passages layered mode shows each question, written beside
    the data folder's other made files (``reading/NAME.jsonl``)."""
    from assistant.services import Services
    from assistant.training.data import load_examples
    from assistant.training.reading import SPREAD, pipeline_contexts, write_reading_file

    out = settings.data_dir / "reading" / f"{name}.jsonl"
    contexts = pipeline_contexts(Services(settings).pipeline, domain)
    counts = write_reading_file(load_examples(data), contexts, out, seed, progress_bar,
                                SPREAD if spread is None else spread)
    logging.getLogger(__name__).info(
        "reading pairs -> %s: %d with the fact among the passages, %d with distractors only; "
        "%d in spread contexts (drawn for one but kept layered mode's own: %d with no other "
        "passage in reach, %d with no room beside the fact, %d that would drop part of it); "
        "%d questions left out (their passages lack the fact)", out, counts["with_fact"],
        counts["distractors_only"], counts["spread"], counts["no_other_passage"],
        counts["no_room"], counts["drop_fact"], counts["fact_not_retrieved"])
    return out


def _read_profile(path: Path) -> dict[str, Any]:
    try:
        profile = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainingDataError(f"--profile {path}: cannot read a JSON object ({exc})") from None
    if not isinstance(profile, dict):
        raise TrainingDataError(f"--profile {path}: expected a JSON object")
    return profile


def _render(payload: dict[str, Any]) -> str:
    card = payload["card"]
    last = card["loss_curve"][-1] if card["loss_curve"] else {}
    stop = f", stopped early (best epoch {card['best_epoch']})" if card["stopped_early"] else ""
    return (
        f"adapter {payload['name']} written to {payload['path']}\n"
        f"  {card['data']['examples']} examples from {card['data']['file']}, "
        f"{card['epochs_run']} epochs, {card['steps']} steps{stop}\n"
        f"  train loss {last.get('train_loss')}, validation loss {card['best_val_loss']}\n"
        f"  {card['seconds']:.0f} s, estimated cost ${card['cost_usd']:.4f}, "
        f"{card['adapter_bytes'] / 2**20:.1f} MB\n"
        f"  system prompt: {card['system_prompt']}"
    )
