"""A dev set for prompt-mode choices: one training question per fact.

Prompt mode never learns from the training file, so its settings can be chosen on these
questions and checked once on the held-out test file (which is worded differently). The
phrasings rotate (fact i takes its phrasing i mod n), so the set is not all first drafts.
Not for adapter or layered mode: the adapter learnt these very questions.

    python -m research.dev_questions /tmp/dev.jsonl
    assistant eval --questions /tmp/dev.jsonl --modes prompt --no-card --out /tmp/dev-eval
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TRAIN = Path(__file__).resolve().parent.parent / "knowledge/harrowgate-water/qa/train.jsonl"


def one_per_fact(rows: list[dict]) -> list[dict]:
    """The ``i mod n``-th phrasing of the i-th fact (facts in file order)."""
    by_fact: dict[str, list[dict]] = {}
    for row in rows:
        by_fact.setdefault(row["fact_id"], []).append(row)
    return [phrasings[i % len(phrasings)] for i, phrasings in enumerate(by_fact.values())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="JSONL file to write")
    parser.add_argument("--train", type=Path, default=TRAIN, help="training questions (JSONL)")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.train.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    chosen = one_per_fact(rows)
    args.out.write_text("".join(json.dumps(row) + "\n" for row in chosen), encoding="utf-8")
    print(f"{len(chosen)} questions ({len(rows)} training rows) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
