"""Should layered mode's answer check ask the reader to agree with the ranker?

Question (issue 29): an adapter trained to read its passages (``assistant train --reading``)
answered 75% of the demo's held-out questions in its own words, but about half of those
restated a different sentence of its passages than the one the question asks about ("Which
person presides over the directors?" -> "The vice-chair is Rhodri Fennimore."). The answer
check lets such an answer through: what it states is in the documents. Prompt mode's check
also requires the specifics an answer takes from its context to be in the best-ranked
sentence(s) (``agree_sentences``); layered mode's did not. How would recall and the share
of answers in the model's own words move if layered mode required it too, with the best 1,
2 or 3 sentences? (Answered on synth's held-out questions, the dev set: with the best 1,
which layered mode now asks for; assistant/answering/grounding.py.)

Replayed, not re-answered: for each layered answer of an ``assistant eval`` run, the
model's own text (the ledger's ``generated`` where the check replaced it, else the answer)
goes through the pipeline's own answer check (``Pipeline.ground``, its profile's agreement
set to each value) again, against the ranking and context the pipeline computes for the
question now (same code and engine as the run: the replay names the agreement that gives the
verdicts the run recorded, and on how many answers), and scored as the evaluation scores
it: the answer if it passes, else the quote of the best-ranked sentences. Without the run's
ledger, an answer recorded as quoted stays quoted (a stricter check cannot let it through).

Run, in the data folder the evaluation used (its documents ingested, its ledger):
``ASSISTANT_DATA_DIR=DATA .venv/bin/python -m research.layered_agreement --results
RUN/results.csv --label WHAT --out research/results/layered_agreement/NAME.json``; the table
of every such file is docs/evaluation.md's ``layered-agreement`` block (``python -m
bench.readme``).
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from research import emit

AGREEMENTS = (0, 1, 2, 3)  # 0: layered mode's check before it asked for agreement
RESULTS = Path(__file__).resolve().parent / "results" / "layered_agreement"


def score(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per agreement: fact recall over the in-scope questions, the share of answers in the
    model's own words (not replaced by the quote; a decline counts, as in the evaluation's
    ``quoted_rate``), and the recall of those answers."""
    scored = [r for r in records if r["must_contain"]]
    out: dict[str, dict[str, float]] = {}
    for k in AGREEMENTS:
        key = f"agree_{k}"
        own = [r for r in scored if r[key]["own_words"]]
        out[key] = {
            "recall": round(sum(r[key]["recall"] for r in scored) / max(len(scored), 1), 3),
            "own_words_share": round(len(own) / max(len(scored), 1), 3),
            "own_words_recall": round(sum(r[key]["recall"] for r in own) / max(len(own), 1), 3),
            "questions": len(scored),
        }
    return out


def kept(verdict: str) -> bool:
    """Whether an evaluation row's recorded check kept the model's text (a decline, or an
    answer without passages to check against, too)."""
    return not verdict.startswith("quoted")


def reproduced(answers: list[dict[str, Any]]) -> str:
    """Which agreement gives the verdicts the run recorded, on how many replayed answers:
    the check the run had, found again (the ranking is recomputed, so a few may differ)."""
    replayed = [a for a in answers if "reproduced" in a]  # not those kept as recorded
    same = {k: sum(a[f"agree_{k}"]["own_words"] == kept(a["recorded"]) for a in replayed)
            for k in AGREEMENTS}
    best = max(AGREEMENTS, key=lambda k: same[k])
    return (f"{'no agreement' if best == 0 else f'best {best}'}, {same[best]}/{len(replayed)}")


def markdown(runs: list[dict[str, Any]]) -> str:
    """One row per replayed run: recall (own-words share) per agreement, the best recall in
    bold; then each run's command."""
    head = "| layered answers of | questions | " + " | ".join(
        "no agreement" if k == 0 else f"best {k}" for k in AGREEMENTS) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(AGREEMENTS)]
    for run in runs:
        figures = run["agreements"]
        best = max(f["recall"] for f in figures.values())
        cells = []
        for k in AGREEMENTS:
            f = figures[f"agree_{k}"]
            recall = f"{f['recall']:.2f}"
            cells.append(f"{'**' + recall + '**' if f['recall'] == best else recall} "
                         f"({f['own_words_share']:.0%})")
        lines.append(f"| {run['label']} | {figures['agree_0']['questions']} | "
                     + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- {run['label']}: `{run['command']}` (the run's own check, found again: "
              f"{reproduced(run['answers'])} answers as recorded)" for run in runs]
    return "\n".join(lines) + "\n"


def replay(results: Path, ledger: Path | None) -> list[dict[str, Any]]:
    """Each layered answer of ``results`` under every agreement (see the module docstring)."""
    from assistant.answering import grounding
    from assistant.answering.modes import Mode
    from assistant.answering.routing import Decision
    from assistant.evaluation.run import fact_recall
    from assistant.services import Services
    from assistant.settings import Settings

    rows = [r for r in csv.DictReader(results.open(encoding="utf-8")) if r["mode"] == "layered"]
    db = sqlite3.connect(ledger) if ledger and ledger.exists() else None
    pipeline = Services(Settings()).pipeline
    layered = Decision(mode=Mode.LAYERED, adapter=None, reason="replay")
    profile = pipeline.profile
    count = profile.quote_sentences
    records = []
    for row in rows:
        must = [m for m in row["must_contain"].split("|") if m]
        stored = db.execute("select generated, answer from answers where id = ?",
                            (row["ledger_id"],)).fetchone() if db else None
        record: dict[str, Any] = {"question": row["question"], "must_contain": must,
                                  "recorded": row["grounding"]}
        if stored is None and row["grounding"].startswith("quoted"):
            recall = fact_recall(row["answer"], must) or 0.0
            record.update({f"agree_{k}": {"own_words": False, "recall": recall}
                           for k in AGREEMENTS})
            records.append(record)
            continue
        own = (stored[0] or stored[1]) if stored else row["answer"]
        _, hits, _ = pipeline.plan(row["question"], Mode.LAYERED, None)
        prepared = pipeline.messages(row["question"], layered, hits)
        quote = grounding.quote(prepared.ranked, count) if prepared.ranked else own
        record["quote_recall"] = fact_recall(quote, must) or 0.0
        for k in AGREEMENTS:  # the product's own check, with each agreement
            pipeline.profile = replace(profile, agree_sentences=k)
            shown, verdict, _ = pipeline.ground(row["question"], own, prepared, Mode.LAYERED)
            passes = kept(verdict)  # a decline too, as the evaluation counts
            record[f"agree_{k}"] = {"own_words": passes,
                                    "recall": fact_recall(shown, must) or 0.0,
                                    "why": "" if passes else verdict.removeprefix("quoted: ")}
        record["reproduced"] = record["agree_0"]["own_words"] == kept(row["grounding"])
        records.append(record)
        print(f"{len(records)}/{len(rows)}", file=sys.stderr, flush=True)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, required=True,
                        help="an `assistant eval` run's results.csv (its layered rows)")
    parser.add_argument("--ledger", type=Path, default=None,
                        help="that run's ledger.db, for the model's text of replaced answers "
                        "(default: DATA/ledger.db when it holds the run's rows)")
    parser.add_argument("--label", required=True,
                        help="what the run was, for the table (adapter, questions)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from assistant.settings import Settings

    ledger = args.ledger or Settings().data_dir / "ledger.db"
    records = replay(args.results, ledger)
    result = {
        "command": "python -m research.layered_agreement " + shlex.join(
            sys.argv[1:] if argv is None else argv),
        "label": args.label,
        "results": str(args.results),
        "reproduced": reproduced(records),
        "agreements": score(records),
        "answers": records,
    }
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
