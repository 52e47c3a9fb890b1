"""The `assistant` command. Heavy libraries load inside the handlers, so --help is instant."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from assistant import __version__
from assistant.errors import StrataError

# Each module registers its subcommands; order is the order shown in --help.
COMMAND_MODULES = ["serve", "models", "generate", "ask", "chat", "logs", "knowledge", "stats",
                   "synth", "writer", "train", "evaluate"]
T = TypeVar("T")  # what a command reports: rendered by its own function, or dumped as JSON


def emit(result: T, as_json: bool, render: Callable[[T], str] | None = None) -> None:
    """Print one JSON object (--json) or the human rendering of ``result``."""
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(render(result) if render else result)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistant",
        description="Strata: compare prompt+retrieval with LoRA adapters on your own data.",
        epilog="Settings come from ASSISTANT_* environment variables (see docs/settings.md).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"assistant.commands.{name}").register(subparsers)
    return parser


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "urllib3", "chromadb", "bitsandbytes", "transformers",
                  "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def quiet_libraries() -> None:
    """Silence progress bars and hub lookups of the libraries; our own logs say enough."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    quiet_libraries()
    try:
        return args.handler(args) or 0
    except StrataError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": str(exc)}))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
