"""What training writes into an adapter folder; the card is built from a plain run record.

``adapters/<name>/`` (file names and the Card type: ``assistant.models.adapter_folder``):
adapter_config.json + adapter_model.safetensors (PEFT format, fp16 weights: half the size of
fp32, and LoRA deltas lose nothing that matters in fp16), profile.json (for the router),
card.json and card.md (how it was made and what it cost). This module never imports the
training loop: the loop hands it a ``RunRecord`` of plain values.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import TrainingDataError
from assistant.models.adapter_folder import (
    CONFIG,
    NAME_RULE,
    WEIGHTS,
    Card,
    is_valid_name,
    write_profile,
)
from assistant.training.data import Example, fingerprint, profile_examples

if TYPE_CHECKING:
    from assistant.ledger.store import Ledger
    from assistant.settings import Settings

WEIGHT_DTYPE = "float16"
STAGING = ".staging"  # inside adapters_dir: same filesystem (rename is atomic), never listed


@dataclass
class RunRecord:
    """What one training run was and did, in plain values: all a card is built from."""

    name: str
    data: Path | str
    base_model: str
    quant: str
    counts: tuple[int, int, int]  # examples, train, validation
    hyperparameters: dict[str, Any]
    system_prompt: str
    trainable_parameters: int
    steps: int
    planned_steps: int
    epochs_run: int
    stopped_early: bool
    best_epoch: int | None
    best_val_loss: float | None
    seconds: float
    loss_curve: list[dict[str, Any]] = field(default_factory=list)
    validation_target: str = "answer tokens"


def check_target(adapters_dir: Path, name: str, overwrite: bool) -> Path:
    """The adapter's folder; refuses a bad name, or an existing adapter without overwrite."""
    if not is_valid_name(name):
        raise TrainingDataError(f"invalid adapter name {name!r}: {NAME_RULE}")
    target = Path(adapters_dir) / name
    if target.exists() and not overwrite:
        raise TrainingDataError(
            f"adapter {name!r} already exists in {adapters_dir}; pass --overwrite to replace it"
        )
    return target


def subject(name: str) -> str:
    words = re.sub(r"[-_.]+", " ", name).strip()
    return words[:1].upper() + words[1:]


def build_profile(name: str, examples: list[Example], description: str | None = None,
                  questions: list[str] | None = None) -> dict[str, Any]:
    """The router profile: what the adapter knows about, and typical questions."""
    questions = questions or profile_examples(examples)
    if not description:
        sample = "; ".join(questions[:3])
        description = f"{subject(name)}: questions such as {sample}"
    return {"name": name, "description": description, "examples": list(questions)[:12]}


def default_system_prompt(name: str, description: str) -> str:
    """A short per-adapter system prompt: 'You are the <subject> assistant. Answer briefly.'

    The subject is the description's opening phrase (up to the first punctuation), which for
    a profile like 'Harrowgate Valley Water Cooperative, a small ...' is the organisation.
    """
    head = re.split(r"[,:;.(\n]", description, maxsplit=1)[0].strip()
    words = head.split()
    if not words or len(words) > 12:
        head = subject(name)
    return f"You are the {head} assistant. Answer briefly."


def build_card(run: RunRecord, settings: Settings) -> Card:
    """Everything needed to judge and reproduce the adapter (its evaluation comes later)."""
    from assistant.ledger.costs import hourly_rate, training_cost

    examples, train, val = run.counts
    return Card({
        "name": run.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_model": run.base_model,
        "quant": run.quant,
        "data": {**fingerprint(run.data), "examples": examples, "train_examples": train,
                 "val_examples": val},
        "hyperparameters": dict(run.hyperparameters),
        "system_prompt": run.system_prompt,
        "trainable_parameters": run.trainable_parameters,
        "weights_dtype": WEIGHT_DTYPE,
        "steps": run.steps,
        "planned_steps": run.planned_steps,
        "epochs_run": run.epochs_run,
        "stopped_early": run.stopped_early,
        "best_epoch": run.best_epoch,
        "best_val_loss": run.best_val_loss,
        "validation_target": run.validation_target,
        "loss_curve": list(run.loss_curve),
        "seconds": round(run.seconds, 1),
        "cost_usd": training_cost(run.seconds, settings),
        "usd_per_hour": hourly_rate(settings),
        "eval": None,
    })


def write_adapter(model: Any, adapters_dir: Path, name: str, base_name: str,
                  card: Card, profile: dict[str, Any], overwrite: bool,
                  routable: bool = True) -> Path:
    """Write everything into a staging folder, then move it into place in one rename.
    ``routable=False``: no router profile (a tool adapter such as the question writer,
    which must never answer users' questions in auto mode)."""
    adapters_dir = Path(adapters_dir)
    staging = adapters_dir / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    tmp = staging / f"{name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _save_weights(model, tmp, base_name)
        card["adapter_bytes"] = (tmp / WEIGHTS).stat().st_size
        if routable:
            write_profile(tmp, profile)
        card.write(tmp, profile)
        return _move_into_place(tmp, adapters_dir / name, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_if_empty(staging)


def _save_weights(model: Any, folder: Path, base_name: str) -> None:
    """The PEFT folder format (adapter_config.json + safetensors), written from the LoRA
    parameters themselves, in fp16, with the base's registry name.

    Not ``model.save_pretrained``: it calls ``state_dict()``, which on bitsandbytes' CPU 4-bit
    layers (0.50) repacks the base weights in place and silently corrupts the live model.
    """
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    name = model.active_adapter
    weights = {
        key.replace(f".{name}.", "."): p.detach().to(getattr(torch, WEIGHT_DTYPE)).contiguous()
        for key, p in model.named_parameters()
        if p.requires_grad
    }
    save_file(weights, str(folder / WEIGHTS), metadata={"format": "pt"})
    (folder / WEIGHTS).chmod(0o644)  # save_file makes it owner-only, unlike the other files
    config = model.peft_config[name].to_dict()
    config.update(base_model_name_or_path=base_name, inference_mode=True)
    (folder / CONFIG).write_text(json.dumps(config, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


def _move_into_place(tmp: Path, target: Path, overwrite: bool) -> Path:
    if target.exists():
        if not overwrite:
            raise TrainingDataError(f"adapter {target.name!r} appeared while training; "
                                    "pass --overwrite to replace it")
        old = tmp.with_name(tmp.name + ".old")
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(target)
    return target


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # another training is staging there, or it is already gone


def record(ledger: Ledger, card: Card) -> None:
    """Add the run to the app's ledger, so the adapter's cost is amortised over its answers."""
    ledger.record_training(
        card["name"], base_model=card["base_model"], seconds=card["seconds"],
        cost_usd=card["cost_usd"], examples=card["data"]["examples"], steps=card["steps"],
        card=card.to_dict(),
    )
