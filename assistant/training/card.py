"""What a trained adapter folder holds besides its weights, and how it is written.

``adapters/<name>/``: adapter_config.json + adapter_model.safetensors (PEFT format, fp16
weights: half the size of fp32, and LoRA deltas lose nothing that matters in fp16),
profile.json (for the router), card.json and card.md (how it was made and what it cost).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import TrainingDataError
from assistant.models.adapters import CONFIG, NAME_RE, WEIGHTS
from assistant.training.data import Example, fingerprint, profile_examples

if TYPE_CHECKING:
    from assistant.settings import Settings
    from assistant.training.loop import History, TrainConfig

WEIGHT_DTYPE = "float16"
STAGING = ".staging"  # inside adapters_dir: same filesystem (rename is atomic), never listed


def check_target(adapters_dir: Path, name: str, overwrite: bool) -> Path:
    """The adapter's folder; refuses a bad name, or an existing adapter without overwrite."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise TrainingDataError(
            f"invalid adapter name {name!r}: use letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit, at most 100 characters)"
        )
    target = Path(adapters_dir) / name
    if target.exists() and not overwrite:
        raise TrainingDataError(
            f"adapter {name!r} already exists in {adapters_dir}; pass --overwrite to replace it"
        )
    return target


def subject(name: str) -> str:
    words = re.sub(r"[-_.]+", " ", name).strip()
    return words[:1].upper() + words[1:]


def build_profile(name: str, examples: list[Example], config: TrainConfig) -> dict[str, Any]:
    """The router profile: what the adapter knows about, and typical questions."""
    questions = config.examples or profile_examples(examples)
    description = config.description
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


def build_card(*, name: str, data: Path | str, settings: Settings, config: TrainConfig,
               base: Any, model: Any, history: History, seconds: float, system_prompt: str,
               counts: tuple[int, int, int],
               validation_target: str = "answer tokens") -> dict[str, Any]:
    """Everything needed to judge and reproduce the adapter (eval filled in later)."""
    from assistant.ledger.costs import hourly_rate, training_cost

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "name": name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "base_model": settings.base_model,
        "quant": base.quant,
        "data": {**fingerprint(data), "examples": counts[0], "train_examples": counts[1],
                 "val_examples": counts[2]},
        "hyperparameters": config.hyperparameters(),
        "system_prompt": system_prompt,
        "trainable_parameters": trainable,
        "weights_dtype": WEIGHT_DTYPE,
        "steps": history.steps,
        "planned_steps": history.total_steps,
        "epochs_run": history.epochs_run,
        "stopped_early": history.stopped_early,
        "best_epoch": history.best_epoch,
        "best_val_loss": history.best_val_loss,
        "validation_target": validation_target,
        "loss_curve": history.curve,
        "seconds": round(seconds, 1),
        "cost_usd": training_cost(seconds, settings),
        "usd_per_hour": hourly_rate(settings),
        "eval": None,
    }


def render_markdown(card: dict[str, Any], profile: dict[str, Any]) -> str:
    """card.md: the card for people (the same facts as card.json)."""
    d, h = card["data"], card["hyperparameters"]
    lines = [
        f"# Adapter `{card['name']}`", "", profile["description"], "",
        f"- Base model: `{card['base_model']}` ({card['quant']}), LoRA weights in "
        f"{card['weights_dtype']}, {card['trainable_parameters']:,} trainable parameters",
        f"- Data: `{d['file']}` ({d['bytes']:,} bytes, sha256 `{d['sha256'][:16]}...`): "
        f"{d['examples']} examples, {d['train_examples']} train / {d['val_examples']} validation",
        f"- System prompt used in training (send the same one at inference): "
        f"\"{card['system_prompt']}\"",
        f"- Trained {card['epochs_run']} epochs, {card['steps']} steps in {card['seconds']:.0f} s"
        f" (estimated cost ${card['cost_usd']:.4f} at ${card['usd_per_hour']}/h)"
        + (f"; stopped early, best epoch {card['best_epoch']}" if card["stopped_early"] else ""),
        f"- Created: {card['created_at']}", "", "## Hyper-parameters", "",
        "| name | value |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in h.items()],
        "", "## Loss curve", "",
        f"Validation loss on the held-out phrasings' {card.get('validation_target', 'answer tokens')}.",
        "", "| epoch | step | train loss | validation loss |", "|---|---|---|---|",
        *[f"| {p['epoch']} | {p['step']} | {p['train_loss']} | {p['val_loss']} |"
          for p in card["loss_curve"]],
        "", "## Evaluation", "",
        "Not evaluated yet." if card["eval"] is None else f"```\n{json.dumps(card['eval'], indent=2)}\n```",
        "", "## Example questions (router profile)", "", *[f"- {q}" for q in profile["examples"]], "",
    ]
    return "\n".join(lines)


def write_adapter(model: Any, adapters_dir: Path, name: str, base_name: str,
                  card: dict[str, Any], profile: dict[str, Any], overwrite: bool) -> Path:
    """Write everything into a staging folder, then move it into place in one rename."""
    adapters_dir = Path(adapters_dir)
    staging = adapters_dir / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    tmp = staging / f"{name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _save_weights(model, tmp, base_name)
        card["adapter_bytes"] = (tmp / WEIGHTS).stat().st_size
        (tmp / "profile.json").write_text(json.dumps(profile, indent=2, ensure_ascii=False) + "\n")
        (tmp / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
        (tmp / "card.md").write_text(render_markdown(card, profile))
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


def record(settings: Settings, card: dict[str, Any]) -> None:
    """Add the run to the ledger, so the adapter's cost is amortised over its answers."""
    if not settings.data_dir:
        return
    from assistant.ledger.store import Ledger

    ledger = Ledger(settings.data_dir / "ledger.db", store_text=settings.ledger_store_text)
    try:
        ledger.record_training(
            card["name"], base_model=card["base_model"], seconds=card["seconds"],
            cost_usd=card["cost_usd"], examples=card["data"]["examples"], steps=card["steps"],
            card=card,
        )
    finally:
        ledger.close()
