"""When the re-ranker cannot tell its two best sentences apart, should the answer check show
both of them (the quote) rather than an answer taken from the first?

Question (issue 29): layered mode with an adapter trained to read its passages (``assistant
train --reading``, from documents only) recalls less than prompt mode on people's questions
(docs/evaluation.md, writer verdict). The measured cause: the adapter restates the
best-ranked sentence. When that sentence lacks the fact, the answer still agrees with it, so
the answer check keeps it; prompt mode's model fails the check more often, and its fallback,
the quote of the two best sentences, holds the fact in the second. An answer is a guess
between sentences exactly when the ranking is unsure, so the rule replayed here is: an answer
the check keeps (a decline is left alone) is replaced by the quote when the best sentence's
re-ranked score leads the second's by less than a margin.

Replayed, not re-answered: each run's kept answers (its ``results.csv``) against the ranking
the pipeline computes now for the question (same code, engine and documents as the run; the
quotes the run recorded are quoted again, ``reproduced``), per margin: fact recall and the
share of answers in the model's own words. A stricter check never lets a recorded quote
through, so a quoted answer keeps its recorded score. The margin is to be chosen on synth's
held-out questions (the documents-only dev set) and read on the hand-written ones.

Run in a data folder whose knowledge base holds the questions' documents, one question set
per call (its runs' rows share one ranking per question):
``ASSISTANT_DATA_DIR=DATA .venv/bin/python -m research.quote_margin --label WHAT
--run LABEL MODE RUN/results.csv [--run ...] --out research/results/quote_margin/NAME.json``;
the table of every such file is docs/evaluation.md's ``quote-margin`` block (``python -m
bench.readme``).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import shlex
import sys
from pathlib import Path
from typing import Any

from research import emit
from research.layered_agreement import kept

MARGINS = (0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2)  # 0.0: the check as it is
# A band of close calls is worth quoting when at least one in five of the answers it
# replaces gains the fact: a right answer shown as the quote that holds it costs the reader
# a second sentence, a wrong answer left standing costs them the fact.
RESCUE = 0.2
DEV = "(dev)"  # the question sets a margin is chosen on say so in their label
RESULTS = Path(__file__).resolve().parent / "results" / "quote_margin"


def replaced(record: dict[str, Any], margin: float) -> bool:
    """Whether the rule replaces this answer by the quote at ``margin``: the check kept it,
    it is not a decline, and the ranking's two best sentences are closer than ``margin``."""
    return record["kept"] and not record["declined"] and record["lead"] < margin


def score(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per margin, over the in-scope answers: fact recall, the share of answers in the model's
    own words (kept by the check; a decline counts, as in the evaluation's ``quoted_rate``),
    and how many answers the rule replaced."""
    scored = [r for r in records if r["must_contain"]]
    out: dict[str, dict[str, float]] = {}
    for margin in MARGINS:
        recall = own = moved = 0.0
        for r in scored:
            if replaced(r, margin):
                recall, moved = recall + r["quote_recall"], moved + 1
            else:
                recall, own = recall + r["recall"], own + r["kept"]
        n = max(len(scored), 1)
        out[f"{margin:g}"] = {"recall": round(recall / n, 3), "own_words_share": round(own / n, 3),
                              "replaced": int(moved), "questions": len(scored)}
    return out


def bands(files: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Over every run of ``files``' dev question sets: per band of leads between two margins,
    the kept answers the rule replaces there, the recall their quotes gain over them (a quote
    can also lose: a right answer whose fact is in neither quoted sentence), and the rate."""
    out = []
    for low, high in zip(MARGINS, MARGINS[1:]):
        moved = [a for f in files if is_dev(f) for run in f["runs"]
                 for a in run["answers"] if a["must_contain"] and replaced(a, high)
                 and not replaced(a, low)]
        gained = sum(a["quote_recall"] - a["recall"] for a in moved)
        out.append({"from": low, "to": high, "replaced": len(moved), "gained": round(gained, 2),
                    "rate": round(gained / len(moved), 3) if moved else 0.0})
    return out


def is_dev(result: dict[str, Any]) -> bool:
    """Whether a margin may be chosen on this question set (its label says dev)."""
    return bool(result["label"].endswith(DEV))


def kind_of(result: dict[str, Any]) -> str:
    """A question set's kind without its domain: its label after the first comma."""
    return result["label"].partition(", ")[2] or result["label"]


def chosen(rows: list[dict[str, float]]) -> float:
    """The margin: the upper edge of the closest bands, taken in order while each gains the
    fact for at least ``RESCUE`` of the answers it replaces (0: none does)."""
    margin = 0.0
    for row in rows:
        if row["rate"] < RESCUE:
            break
        margin = row["to"]
    return margin


def markdown(files: list[dict[str, Any]]) -> str:
    """One row per replayed run: recall (own-words share) per margin, the best recall in bold;
    then each file's command and how many recorded quotes its ranking quoted again."""
    head = "| answers of | questions | " + " | ".join(
        "the check as it is" if m == 0 else f"margin {m:g}" for m in MARGINS) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(MARGINS)]
    for result in files:
        for run in result["runs"]:
            figures = run["margins"]
            best = max(f["recall"] for f in figures.values())
            cells = [f"{'**' if f['recall'] == best else ''}{f['recall']:.2f}"
                     f"{'**' if f['recall'] == best else ''} ({f['own_words_share']:.0%})"
                     for f in (figures[f"{m:g}"] for m in MARGINS)]
            lines.append(f"| {result['label']}: {run['label']} | {figures['0']['questions']} | "
                         + " | ".join(cells) + " |")
    rows = bands(files)
    if any(row["replaced"] for row in rows):
        lines += ["", "On the dev sets together (every run of the question sets marked dev), "
                  "per band of the best sentence's lead over the second: the kept answers the "
                  "rule replaces there and the recall their quotes gain.", "",
                  "| lead | replaced | recall gained | per replaced answer |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {row['from']:g} to {row['to']:g} | {row['replaced']} | "
                  f"{row['gained']:g} | {row['rate']:.2f} |" for row in rows]
        lines += ["", f"The margin the rule chooses (the closest bands, taken while each gains "
                  f"the fact for at least {RESCUE:.0%} of the answers it replaces), per dev "
                  "question set and together:", ""]
        for kind in dict.fromkeys(kind_of(f) for f in files if is_dev(f)):
            alone = [f for f in files if kind_of(f) == kind]
            lines.append(f"- {kind}, both domains: {chosen(bands(alone)):g}")
        lines.append(f"- every dev set together: **{chosen(rows):g}**")
    lines.append("")
    for result in files:
        again = "; ".join(f"{run['label']} {reproduced(run['answers'])}"
                          for run in result["runs"])
        lines.append(f"- {result['label']}: `{result['command']}` (recorded quotes quoted "
                     f"again: {again})")
    return "\n".join(lines) + "\n"


def reproduced(records: list[dict[str, Any]]) -> str:
    """How many of the quotes a run recorded the ranking computed now quotes again: the
    replay's ranking is the run's where they agree."""
    quoted = [r["quote_reproduced"] for r in records if r["quote_reproduced"] is not None]
    return f"{sum(quoted)}/{len(quoted)}"


def rankings(questions: list[str]) -> dict[str, dict[str, Any]]:
    """For each question, the lead of its best re-ranked sentence over the second and the
    quote the answer check would show, from the pipeline as it answers now (prompt and
    layered mode search and rank alike)."""
    from assistant.answering import grounding
    from assistant.answering.modes import Mode
    from assistant.answering.routing import Decision
    from assistant.services import Services
    from assistant.settings import Settings

    pipeline = Services(Settings()).pipeline
    decision = Decision(mode=Mode.PROMPT, adapter=None, reason="replay")
    count = pipeline.profile.quote_sentences
    out: dict[str, dict[str, Any]] = {}
    for n, question in enumerate(questions, 1):
        _, hits, _ = pipeline.plan(question, decision.mode, None)
        ranked = pipeline.messages(question, decision, hits).ranked
        out[question] = {
            "lead": ranked[0].score - ranked[1].score if len(ranked) > 1 else math.inf,
            "quote": grounding.quote(ranked, count) if ranked else ""}
        print(f"{n}/{len(questions)}", file=sys.stderr, flush=True)
    return out


def records_of(rows: list[dict[str, str]], ranking: dict[str, dict[str, Any]]
               ) -> list[dict[str, Any]]:
    """The replay's record of each answer row: what the run recorded, and the ranking's lead
    and quote for its question."""
    from assistant.evaluation.run import fact_recall

    out = []
    for row in rows:
        must = [m for m in row["must_contain"].split("|") if m]
        rank = ranking[row["question"]]
        lead = rank["lead"]
        out.append({
            "question": row["question"], "must_contain": must,
            "recorded": row["grounding"], "kept": kept(row["grounding"]),
            "declined": row["grounding"] == "declined",
            "recall": float(row["recall"] or 0.0),
            "quote_recall": fact_recall(rank["quote"], must) or 0.0,
            "lead": lead if math.isfinite(lead) else 99.0,
            "quote_reproduced": (row["answer"] == rank["quote"]
                                 if not kept(row["grounding"]) else None)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True, help="the question set, for the table")
    parser.add_argument("--run", nargs=3, action="append", required=True,
                        metavar=("LABEL", "MODE", "RESULTS"),
                        help="an `assistant eval` run's results.csv and the mode (prompt or "
                        "layered) whose answers to replay; repeatable, same questions")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from assistant.settings import Settings
    from bench.freshness import current_commit

    runs = []
    for label, mode, path in args.run:
        text = Path(path).read_text(encoding="utf-8")
        rows = [r for r in csv.DictReader(io.StringIO(text, newline="")) if r["mode"] == mode]
        if not rows:
            parser.error(f"{path} has no {mode} answers")
        runs.append((label, mode, path, rows))
    questions = sorted({r["question"] for *_, rows in runs for r in rows})
    ranking = rankings(questions)
    result: dict[str, Any] = {
        "command": "python -m research.quote_margin " + shlex.join(
            sys.argv[1:] if argv is None else argv),
        "label": args.label, "data_dir": str(Settings().data_dir), "commit": current_commit(),
        "runs": []}
    for label, mode, path, rows in runs:
        records = records_of(rows, ranking)
        result["runs"].append({"label": label, "mode": mode, "results": path,
                               "reproduced": reproduced(records), "margins": score(records),
                               "answers": records})
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
