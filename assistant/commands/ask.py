"""`assistant ask` (one answer through the pipeline) and `assistant router calibrate`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from assistant.answering.modes import ALL as MODES
from assistant.cli import emit
from assistant.errors import StrataError
from assistant.settings import get_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    ask = subparsers.add_parser("ask", help="answer a question (routed or in a chosen mode)")
    ask.add_argument("question")
    ask.add_argument("--mode", choices=MODES, default="auto", help="default: auto (the router)")
    ask.add_argument("--adapter", help="adapter for adapter/layered mode (default: best match)")
    ask.add_argument("--max-new-tokens", type=int, help="answer length cap")
    ask.add_argument("--session", help="session id recorded in the ledger")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.set_defaults(handler=run_ask)

    router = subparsers.add_parser("router", help="router tools")
    router_sub = router.add_subparsers(dest="router_command", required=True)
    calibrate = router_sub.add_parser(
        "calibrate", help="fit the router thresholds from a labelled file",
        description="FILE: JSONL of {\"question\", \"route\": \"domain\"|\"general\"}. Writes "
        "the thresholds to $ASSISTANT_DATA_DIR/router.json, which auto mode then uses.",
    )
    calibrate.add_argument("file", type=Path)
    calibrate.add_argument("--json", action="store_true", help="print one JSON object")
    calibrate.set_defaults(handler=run_calibrate)


def run_ask(args: argparse.Namespace) -> int:
    from assistant.models.sampling import SamplingParams
    from assistant.retrieval.ingest import ensure_demo_knowledge
    from assistant.services import Services

    services = Services(get_settings())
    ensure_demo_knowledge(services.settings, services.store)
    params = SamplingParams.from_settings(services.settings).with_(
        max_new_tokens=args.max_new_tokens)
    stream = services.pipeline.stream(args.question, args.mode, args.adapter, args.session, params)
    for piece in stream:
        if not args.json:
            sys.stdout.write(piece)
            sys.stdout.flush()
    answer = stream.result()
    emit(answer.to_dict(), True) if args.json else print("\n\n" + _render(answer.to_dict()))
    return 0


def _render(a: dict[str, Any]) -> str:
    lines = []
    if a.get("generated") is not None:  # the streamed text was the model's; show what replaced it
        lines += [f"replaced by quotes ({a['grounding'].removeprefix('quoted: ')}):", a["text"], ""]
    lines.append(f"route: {a['mode']}" + (f" ({a['adapter']})" if a["adapter"] else "")
                 + f" | {a['reason']}")
    for s in a["sources"]:
        where = s["section"] or (f"page {s['page']}" if s["page"] else "")
        lines.append(f"  [{s['number']}] {s['name']} {where} (score {s['score']:.2f})")
    lines.append(
        f"tokens in {a['prompt_tokens']} out {a['completion_tokens']}"
        f" | router {a['router_ms']:.0f} ms"
        f" | ttft {a['ttft_ms']:.0f} ms | total {a['total_ms']:.0f} ms | "
        f"{a['tokens_per_s']:.1f} tok/s | cost ${a['cost_usd']:.6f}"
    )
    return "\n".join(lines)


def read_routes(path: Path) -> list[tuple[str, bool]]:
    """(question, is_domain) pairs; errors name the line."""
    from assistant.jsonl import read_objects

    pairs = []
    for number, row in read_objects(path):
        question, route = row.get("question"), row.get("route")
        if not isinstance(question, str) or not question.strip():
            raise StrataError(f"{path}:{number}: expected {{\"question\", \"route\"}}")
        if route not in ("domain", "general"):
            raise StrataError(f"{path}:{number}: route must be 'domain' or 'general', "
                              f"not {route!r}")
        pairs.append((question, route == "domain"))
    if not any(d for _, d in pairs) or all(d for _, d in pairs):
        raise StrataError(f"{path}: needs both domain and general questions")
    return pairs


def run_calibrate(args: argparse.Namespace) -> int:
    from assistant.answering.routing import calibrate
    from assistant.retrieval.ingest import ensure_demo_knowledge
    from assistant.services import Services

    services = Services(get_settings())
    ensure_demo_knowledge(services.settings, services.store)
    samples = []
    for question, is_domain in read_routes(args.file):
        vector = services.embedder.embed_query(question)
        hits = services.store.search(question, query_embedding=vector)
        adapter_scores = services.router.adapter_scores(vector)
        top = max((h.score for h in hits), default=0.0)
        samples.append((max(adapter_scores.values(), default=0.0), top, is_domain))
    thresholds, accuracy = calibrate(samples)
    out = services.settings.data_dir / "router.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"adapter": thresholds.adapter, "retrieval": thresholds.retrieval,
              "accuracy": accuracy, "questions": len(samples), "file": str(args.file)}
    out.write_text(json.dumps(result, indent=2))
    emit({**result, "written": str(out)}, args.json,
         lambda r: f"adapter >= {r['adapter']:.2f}, retrieval >= {r['retrieval']:.2f}: "
                   f"{r['accuracy']:.0%} of {r['questions']} questions routed right; "
                   f"saved to {r['written']}")
    return 0
