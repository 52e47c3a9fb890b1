"""`assistant generate`: raw generation (no retrieval, no routing) with usage and timings."""

from __future__ import annotations

import argparse
import sys

from assistant.cli import emit
from assistant.settings import get_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate", help="generate from the base model (optionally with an adapter)"
    )
    parser.add_argument("prompt", help="the user message")
    parser.add_argument("--adapter", help="LoRA adapter name (default: the bare base)")
    parser.add_argument("--model", help="base model (default: ASSISTANT_BASE_MODEL)")
    parser.add_argument("--quant", choices=["nf4", "int4", "bf16", "fp32"],
                        help="precision override")
    parser.add_argument("--system", help="optional system message")
    parser.add_argument("--max-new-tokens", type=int, help="answer length cap")
    parser.add_argument("--temperature", type=float, help="0 = greedy")
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from assistant.models.sampling import SamplingParams
    from assistant.services import Services

    settings = get_settings()
    overrides = {k: v for k, v in {"base_model": args.model, "quant": args.quant}.items() if v}
    services = Services(settings.model_copy(update=overrides) if overrides else settings)
    backend = services.backend  # the local model, or the configured OpenAI-compatible server
    params = SamplingParams.from_settings(services.settings).with_(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed
    )
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": args.prompt}
    ]
    stream = backend.stream(messages, params, adapter=args.adapter)
    for piece in stream:
        if not args.json:
            sys.stdout.write(piece)
            sys.stdout.flush()
    result = stream.wait()
    base = services.base
    payload = {**result.to_dict(), "backend": backend.name, "model": base.name,
               "quant": base.quant,
               "footprint_mb": round(base.footprint_bytes / 2**20, 1)}
    if args.json:
        emit(payload, True)
    else:
        u, t = result.usage, result.timings
        print(
            f"\n\n[{base.name} {base.quant} adapter={args.adapter or 'none'}] "
            f"tokens in {u.prompt_tokens} out {u.completion_tokens} | ttft {t.ttft_ms:.0f} ms, "
            f"total {t.total_ms:.0f} ms, {t.tokens_per_s:.1f} tok/s | {result.finish_reason}",
            file=sys.stderr,
        )
    return 0
