"""Does an adapter that reads answer people's questions better when its training contexts
look like theirs? Reading pairs with layered mode's own contexts against spread contexts
(``assistant.training.reading.spread``), on the hand-written held-out questions (issue 29).

    python -m research.reading_contexts --domain D \\
        --baseline research/results/writer/D/verdict.json --pairs RUN/pairs/report.json \\
        --run LABEL SUMMARY CARD [--run ...] --out FILE

- ``--baseline``: the domain's writer verdict; its reading adapter (trained on layered
  mode's own contexts) and prompt mode, on the same hand-written questions, are the rows
  to beat (``reading`` in that file, with its command).
- ``--pairs``: what the pairs were made from: how many passages layered mode showed the
  writer's training questions and a dev set of people's questions (one hand-written
  training question per fact, which no reading adapter learnt), and at which place the
  fact's passage stood; and the kinds of pairs made.
- ``--run``: an `assistant eval` summary of layered mode with a reading adapter trained on
  spread pairs, and that adapter's card (training minutes, pairs).

Why a script: the figures stay in generated files, read from the files that hold them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from research import emit
from research.writer_verdict import _card, _own

RESULTS = Path(__file__).resolve().parent / "results" / "reading_contexts"


def shares(counts: dict[str, int]) -> str:
    """``{"1": 30, "2": 10}`` -> "1: 75%, 2: 25%" (keys in order)."""
    total = sum(counts.values()) or 1
    return ", ".join(f"{k}: {v / total:.0%}" for k, v in sorted(counts.items()))


def row(label: str, layered: dict[str, float], minutes: float | None) -> str:
    took = f"{minutes:.1f}" if minutes is not None else "n/a"
    return (f"| {label} | {layered['recall']:.2f} ({layered['own_words_share']:.0%}) | "
            f"{layered['own_words_recall']:.2f} | {took} |")


def markdown(files: list[dict[str, Any]]) -> str:
    """Per domain: layered mode with each reading adapter and prompt mode on people's
    questions, recall (own-words share), own-words recall and training minutes; then what
    the contexts looked like, and the commands."""
    lines = ["| domain, answers of | recall (own words) | own-words recall | training min |",
             "|---|---:|---:|---:|"]
    for f in files:
        base = f["baseline"]
        lines.append(row(f"{f['domain']}, layered, reading adapter on layered mode's own "
                         f"contexts ({base['adapter']})", base["layered"], base["minutes"]))
        for run in f["runs"]:
            lines.append(row(f"{f['domain']}, layered, {run['label']}", run["layered"],
                             run["minutes"]))
        lines.append(row(f"{f['domain']}, prompt mode (no adapter)", base["prompt"], None))
    lines.append("")
    for f in files:
        p = f["pairs"]
        lines.append(
            f"- {f['domain']}: layered mode showed the writer's training questions passages "
            f"{shares(p['synth']['passages'])} (how many), the fact's passage at place "
            f"{shares(p['synth']['fact_passage_place'])} (0: not shown); people's questions "
            f"(dev) {shares(p['dev']['passages'])}, place "
            f"{shares(p['dev']['fact_passage_place'])}. Pairs with spread contexts "
            f"(share {p['spread_share']:g}): {p['spread']['spread']} spread, "
            f"{p['spread']['with_fact']} with the fact, {p['spread']['distractors_only']} "
            f"distractors only, {p['spread']['fact_not_retrieved']} questions left out.")
    lines.append("")
    for f in files:
        lines.append(f"- {f['domain']}: `{f['command']}`; the baseline's: "
                     f"`{f['baseline']['command']}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domain", required=True)
    parser.add_argument("--baseline", type=Path, required=True,
                        help="research/results/writer/DOMAIN/verdict.json")
    parser.add_argument("--pairs", type=Path, required=True, help="the pairs' report.json")
    parser.add_argument("--run", nargs=3, action="append", required=True,
                        metavar=("LABEL", "SUMMARY", "CARD"),
                        help="layered mode with a reading adapter: its eval summary.json "
                        "(hand-written held-out questions) and its card.json; repeatable")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from bench.freshness import current_commit

    verdict = json.loads(args.baseline.read_text())
    reading = verdict["reading"]
    runs = []
    for label, summary_path, card_path in args.run:
        summary = json.loads(Path(summary_path).read_text())
        card = _card(json.loads(Path(card_path).read_text()))
        if summary.get("engine") != reading.get("engine"):
            parser.error(f"{summary_path} ran on {summary.get('engine')}, the baseline on "
                         f"{reading.get('engine')}")
        runs.append({"label": label, "summary": summary_path, "adapter": summary.get("adapter"),
                     "questions": summary.get("questions_file"), "engine": summary.get("engine"),
                     "layered": _own(summary, "layered"), "card": card,
                     "minutes": card["minutes"]})
    result = {
        "command": "python -m research.reading_contexts " + shlex.join(
            sys.argv[1:] if argv is None else argv),
        "domain": args.domain, "commit": current_commit(),
        "baseline": {"adapter": reading["adapter"], "layered": reading["layered"],
                     "prompt": reading["prompt"], "engine": reading.get("engine"),
                     "minutes": verdict.get("reading_card", {}).get("minutes"),
                     "command": verdict["command"]},
        "pairs": json.loads(args.pairs.read_text()),
        "runs": runs}
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
