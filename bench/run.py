"""Run benchmarks, write bench/results/<name>.json, then refresh docs/benchmarks.md.

    python -m bench.run                 # every bench_*.py
    python -m bench.run models --quick  # only bench_models.py, fewer repetitions
    python -m bench.run answer --questions 2 --concurrency 2   # a benchmark's own options,
                                        # after its name (bench_NAME.options says which)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"


class Skipped(Exception):
    """A benchmark that cannot run here (a missing optional environment): said, not fatal."""


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def machine() -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        # Other work on a 2-core machine skews timings badly; docs/benchmarks.md shows this.
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter,
        epilog="A benchmark with options of its own takes them after its name (its "
        "module's options() and docstring say which, e.g. bench/bench_answer.py: "
        "--questions N --concurrency C,C --rounds R --second-adapter PATH).")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {available()})")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument("--no-readme", action="store_true",
                        help="do not refresh the README and docs/ tables")
    args, extra = parser.parse_known_args(argv)
    from bench.freshness import current_commit

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    RESULTS.mkdir(exist_ok=True)
    for name in args.names or available():
        module = importlib.import_module(f"bench.bench_{name}")
        if extra and not hasattr(module, "options"):
            parser.error(f"bench {name} takes no options of its own: {' '.join(extra)}")
        chosen = module.options(extra) if extra else {}
        started = time.time()
        try:
            result = module.run(quick=args.quick, **chosen)
        except Skipped as exc:  # the other benchmarks still run; the old results stay
            print(f"bench {name}: skipped: {exc}", file=sys.stderr)
            continue
        result["_meta"] = {
            "benchmark": name,
            "command": " ".join(["python -m bench.run", name, *extra]),
            "date": time.strftime("%Y-%m-%d"),
            "commit": current_commit(),  # bench.readme --check: is the code newer?
            "seconds": round(time.time() - started, 1),
            "quick": args.quick,
            "machine": machine(),
        }
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    if not args.no_readme:
        from bench.readme import refresh

        refresh()
    return 0


if __name__ == "__main__":
    sys.exit(main())
