"""The adapter folder, ``adapters/<name>/``: its file names, its name rules, its card and profile.

The one module that knows what an adapter folder holds, so training (which writes it),
the adapter manager and the router (which read it), evaluation (which adds its scores)
and the UI agree on it:

- ``adapter_config.json`` + ``adapter_model.safetensors``: the PEFT weights;
- ``profile.json``: what the adapter knows about, for the router;
- ``card.json`` and ``card.md``: how it was made, what it cost, how it scored.

A file that is present but malformed is refused with its reason (``AdapterError``), so a
caller can mark that one adapter unusable instead of failing for every adapter.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, TypeGuard

from assistant.errors import AdapterError

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
PROFILE = "profile.json"
CARD = "card.json"
CARD_MD = "card.md"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
NAME_RULE = ("use letters, digits, '.', '_' or '-' "
             "(starting with a letter or digit, at most 100 characters)")

_NUMBER = (int, float)
# The card's fields and their JSON types (None: may be null). A card may lack any of them
# (hand-made cards, older runs); one that is present with another type is refused.
CARD_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "created_at": (str,), "base_model": (str,), "quant": (str,),
    "data": (dict,), "hyperparameters": (dict,), "system_prompt": (str,),
    "trainable_parameters": (int,), "weights_dtype": (str,), "steps": (int,),
    "planned_steps": (int,), "epochs_run": (int,), "stopped_early": (bool,),
    "best_epoch": (int, type(None)), "best_val_loss": (*_NUMBER, type(None)),
    "validation_target": (str,), "loss_curve": (list,), "seconds": _NUMBER,
    "cost_usd": _NUMBER, "usd_per_hour": _NUMBER, "adapter_bytes": (int,),
    "eval": (dict, type(None)),
}


def is_valid_name(name: object) -> TypeGuard[str]:
    """A name that stays one folder inside the adapters directory."""
    return isinstance(name, str) and bool(NAME_RE.match(name)) and ".." not in name


def check_name(name: object) -> str:
    """The name itself, or AdapterError saying which names are allowed."""
    if not is_valid_name(name):
        raise AdapterError(f"invalid adapter name {name!r}: {NAME_RULE}")
    return name


def _read_json(folder: Path, file: str) -> Any:
    """The parsed file, None when absent; AdapterError when unreadable or not JSON."""
    path = Path(folder) / file
    if not path.exists():
        return None
    where = f"adapter {Path(folder).name!r}: {file}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AdapterError(f"{where} cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise AdapterError(f"{where} is not valid JSON (not UTF-8: {exc.reason})") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise AdapterError(f"{where} is not valid JSON ({exc})") from None


def write_text(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


# --- the router profile ----------------------------------------------------------------------
def read_profile(folder: Path) -> dict[str, Any] | None:
    """profile.json as {"name", "description", "examples"}; None when the folder has none.

    Refused (AdapterError) when it is not a JSON object whose description is a string and
    whose examples are a list of strings.
    """
    data = _read_json(folder, PROFILE)
    if data is None:
        return None
    where = f"adapter {Path(folder).name!r}: {PROFILE}"
    if not isinstance(data, dict):
        raise AdapterError(f"{where} must hold a JSON object, not {type(data).__name__}")
    description, examples = data.get("description", ""), data.get("examples", [])
    if not isinstance(description, str):
        raise AdapterError(f"{where}: 'description' must be a string")
    if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
        raise AdapterError(f"{where}: 'examples' must be a list of strings")
    return {"name": data.get("name", Path(folder).name), "description": description,
            "examples": examples}


def profile_texts(profile: dict[str, Any]) -> list[str]:
    """The sentences the router embeds: the description and the example questions."""
    texts = [profile["description"], *profile["examples"]]
    return [t for t in texts if t.strip()]


def write_profile(folder: Path, profile: dict[str, Any]) -> None:
    write_text(Path(folder) / PROFILE, _dump(profile))


# --- the card --------------------------------------------------------------------------------
class Card:
    """card.json: how an adapter was made, what it cost, and (once evaluated) how it scored.

    Wraps the card's fields (unknown ones are kept as they are); ``read`` checks their types,
    so a reader of ``system_prompt`` or ``seconds`` gets what the name says or no card.
    """

    def __init__(self, fields: dict[str, Any], source: str = CARD) -> None:
        if not isinstance(fields, dict):
            raise AdapterError(f"{source} must hold a JSON object, not {type(fields).__name__}")
        wrong = [key for key, types in CARD_FIELDS.items()
                 if key in fields and not _is(fields[key], types)]
        if wrong:
            raise AdapterError(f"{source}: wrong type for {', '.join(wrong)}")
        self._fields = dict(fields)

    @classmethod
    def read(cls, folder: Path) -> Card | None:
        """The folder's card; None when it has none; AdapterError when it is malformed."""
        data = _read_json(folder, CARD)
        return None if data is None else cls(data, f"adapter {Path(folder).name!r}: {CARD}")

    def write(self, folder: Path, profile: dict[str, Any] | None = None) -> Path:
        """Write card.json, and card.md: whole from the profile when given, else only its
        Evaluation section (the rest of a card.md is kept as it is)."""
        folder = Path(folder)
        write_text(folder / CARD, _dump(self._fields))
        md = folder / CARD_MD
        if profile is not None:
            write_text(md, render_markdown(self, profile))
        elif md.is_file():
            write_text(md, replace_evaluation(md.read_text(encoding="utf-8"), self.evaluation))
        return folder / CARD

    def set_evaluation(self, scores: dict[str, Any]) -> None:
        """Record an evaluation's scores (flat keys such as ``adapter_recall``)."""
        if not isinstance(scores, dict):
            raise AdapterError("an adapter card's evaluation must be a dict of scores")
        self._fields["eval"] = dict(scores)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._fields)

    def get(self, key: str, default: Any = None) -> Any:
        return self._fields.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __setitem__(self, key: str, value: Any) -> None:
        types = CARD_FIELDS.get(key)
        if types and not _is(value, types):
            raise AdapterError(f"{CARD}: wrong type for {key}")
        self._fields[key] = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Card) and other._fields == self._fields

    @property
    def name(self) -> str:
        return self._fields.get("name", "")

    @property
    def system_prompt(self) -> str | None:
        """The system prompt the adapter was trained with (send the same one at inference)."""
        return self._fields.get("system_prompt") or None

    @property
    def evaluation(self) -> dict[str, Any] | None:
        return self._fields.get("eval")

    @property
    def cost_usd(self) -> float | None:
        return self._fields.get("cost_usd")

    @property
    def seconds(self) -> float | None:
        return self._fields.get("seconds")

    @property
    def data(self) -> dict[str, Any]:
        return self._fields.get("data") or {}


# The GGUF's own 4-bit values: what llama.cpp computes with ("gguf") and their fp32
# dequantisation, the converted base torch loads (what adapters train on for llama.cpp).
GGUF_VALUES = frozenset({"gguf", "fp32"})


def precision_mismatch(name: str, card: Card | None, served: str) -> str | None:
    """Why adapter ``name`` may recall less here than it was trained to (None: it is served
    on the weights it was trained on, or its card does not say), and what to do. An adapter
    learns the rounding of the weights it trains on: trained on NF4 and served by llama.cpp,
    the demo adapter recalled 0.50 of its facts against 0.64 on NF4
    (research/results/nf4_trained_adapter/)."""
    trained = card.get("quant") if card is not None else None
    if not trained or trained == served or {trained, served} <= GGUF_VALUES:
        return None
    if served == "gguf":
        where, serve_as_trained = "llama.cpp's GGUF 4-bit weights", (
            f"ASSISTANT_BACKEND=local ASSISTANT_QUANT={trained}")
    else:
        where, serve_as_trained = f"{served} weights", f"ASSISTANT_QUANT={trained}"
    return (f"adapter {name!r} was trained on {trained} weights and is served on {where} "
            f"here: it may recall fewer facts than it learnt. Serve it as trained "
            f"({serve_as_trained}) or train it again where it is served")


def _is(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:  # JSON true is no count or number
        return False
    return isinstance(value, types)


# --- card.md: the card for people --------------------------------------------------------------
def evaluation_section(scores: dict[str, Any] | None) -> str:
    """card.md's Evaluation section, up to the next heading."""
    if scores is None:
        return "## Evaluation\n\nNot evaluated yet.\n\n"
    return ("## Evaluation\n\nFrom `assistant eval` (see its report.md):\n\n"
            f"```\n{json.dumps(scores, indent=2)}\n```\n\n")


def replace_evaluation(text: str, scores: dict[str, Any] | None) -> str:
    """card.md with its Evaluation section replaced (or added at the end)."""
    section = evaluation_section(scores)
    pattern = re.compile(r"^## Evaluation\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(lambda _: section, text, count=1)
    return text.rstrip("\n") + "\n\n" + section


def render_markdown(card: Card, profile: dict[str, Any]) -> str:
    """card.md of a trained adapter: the same facts as card.json, for people."""
    d, h = card["data"], card["hyperparameters"]
    lines = [
        f"# Adapter `{card['name']}`", "", profile["description"], "",
        (f"- Base model: `{card['base_model']}` ({card['quant']}), LoRA weights in "
         f"{card['weights_dtype']}, {card['trainable_parameters']:,} trainable parameters"),
        (f"- Data: `{d['file']}` ({d['bytes']:,} bytes, sha256 `{d['sha256'][:16]}...`): "
         f"{d['examples']} examples, {d['train_examples']} train / {d['val_examples']} validation"),
        (f"- System prompt used in training (send the same one at inference): "
         f"\"{card['system_prompt']}\""),
        f"- Trained {card['epochs_run']} epochs, {card['steps']} steps in {card['seconds']:.0f} s"
        f" (estimated cost ${card['cost_usd']:.4f} at ${card['usd_per_hour']}/h)"
        + (f"; stopped early, best epoch {card['best_epoch']}" if card["stopped_early"] else ""),
        f"- Created: {card['created_at']}", "", "## Hyper-parameters", "",
        "| name | value |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in h.items()],
        "", "## Loss curve", "",
        f"Validation loss on the held-out phrasings' {card['validation_target']}.",
        "", "| epoch | step | train loss | validation loss |", "|---|---|---|---|",
        *[f"| {p['epoch']} | {p['step']} | {p['train_loss']} | {p['val_loss']} |"
          for p in card["loss_curve"]],
        "", evaluation_section(card.evaluation).rstrip("\n"), "",
        "## Example questions (router profile)", "", *[f"- {q}" for q in profile["examples"]], "",
    ]
    return "\n".join(lines)
