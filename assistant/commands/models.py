"""`assistant models` and `assistant adapters`: what is available, and its status."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, cast

from assistant.cli import emit
from assistant.settings import get_settings

if TYPE_CHECKING:
    from assistant.models.base_models import LoadedModel


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="base models in the registry and their status")
    models.add_argument("--json", action="store_true", help="print one JSON object")
    models.set_defaults(handler=run_models)

    adapters = subparsers.add_parser("adapters", help="LoRA adapters on disk and their status")
    adapters.add_argument("--json", action="store_true", help="print one JSON object")
    adapters.set_defaults(handler=run_adapters)


def run_models(args: argparse.Namespace) -> int:
    from assistant.backends import engine
    from assistant.backends.base import describe_settings
    from assistant.models import profiles
    from assistant.models.base_models import REGISTRY, model_status

    settings = get_settings()
    rows = [model_status(name, settings.cache_dir) for name in REGISTRY]
    for row in rows:
        row["profile"] = profiles.profile_for_model(row["name"]).name
    result = {"default": settings.base_model, "quant": engine.local_quant(settings),
              "models": rows,
              "backend": describe_settings(settings),
              # which engine answers here and why (llama.cpp's logits check runs: ~1 s)
              "engine": engine.check(settings).to_dict(),
              "profile": profiles.resolve(settings).to_dict()}
    emit(result, args.json, _render_models)
    return 0


def _render_models(result: dict[str, Any]) -> str:
    lines = [f"{'name':<14} {'installed':<9} {'converted':<9} description"]
    for row in result["models"]:
        mark = "*" if row["name"] == result["default"] else " "
        lines.append(
            f"{row['name']:<13}{mark} {_yes(row['installed']):<9} {_yes(row['converted']):<9} "
            f"{row['description']}"
        )
    gguf = "; llama.cpp reads the GGUF" if result["engine"]["engine"] == "llamacpp" else ""
    lines.append(f"\n* default (ASSISTANT_BASE_MODEL); "
                 f"torch precision {result['quant']} (ASSISTANT_QUANT{gguf}).")
    lines.append("Any local model directory or hub id also works as ASSISTANT_BASE_MODEL.")
    backend = result["backend"]
    where = f" at {backend['url']} (model {backend['model']})" if "url" in backend else ""
    lines.append(f"Backend: {backend['name']}{where} (ASSISTANT_BACKEND).")
    choice = result["engine"]
    lines.append(f"Engine: {choice['engine']}, " + (
        f"a fallback from llama.cpp: {choice['reason']}" if choice["fallback"]
        else choice["reason"]) + ".")
    profile = result["profile"]
    lines.append(f"Profile: {profile['name']}: context {profile['max_context_tokens']} tokens, "
                 f"re-ranking {_yes(profile['reranks'])}, answer check {_yes(profile['checks'])}"
                 " (ASSISTANT_PROFILE; ASSISTANT_MAX_CONTEXT_TOKENS and the like override it).")
    return "\n".join(lines)


def run_adapters(args: argparse.Namespace) -> int:
    from assistant.models.adapters import AdapterManager

    settings = get_settings()
    # Listing needs no model: validate against the configured base by name only.
    # (duck-typed: listing reads only the base's name and source)
    base = cast("LoadedModel", _NameOnlyBase(settings.base_model))
    manager = AdapterManager(settings.adapters_dir, base)
    rows = [info.to_dict() for info in manager.list()]
    result = {"adapters_dir": str(settings.adapters_dir), "base_model": settings.base_model,
              "adapters": rows}
    emit(result, args.json, _render_adapters)
    return 0


class _NameOnlyBase:
    """Stands in for a loaded base when only its name matters (validation, listing)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = name


def _render_adapters(result: dict[str, Any]) -> str:
    if not result["adapters"]:
        return f"no adapters in {result['adapters_dir']} (train one with `assistant train`)"
    lines = [f"{'name':<22} {'rank':>4} {'size':>8}  targets / problem"]
    for row in result["adapters"]:
        if row["ok"]:
            detail = ",".join(row["target_modules"] or [])
            size = f"{row['size_bytes'] / 2**20:.1f} MB"
            lines.append(f"{row['name']:<22} {row['rank']:>4} {size:>8}  {detail}")
        else:
            lines.append(f"{row['name']:<22} {'-':>4} {'-':>8}  REFUSED: {row['problem']}")
    return "\n".join(lines)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
