"""Does an adapter that reads answer people's questions better when its training contexts
look like theirs? Reading pairs with layered mode's own contexts against spread contexts
(``assistant.training.reading.spread``), on the hand-written held-out questions (issue 29).

    python -m research.reading_contexts pairs --domain D --synth RUN/synth/train.jsonl \\
        --dev DEV.jsonl --spread 0.8 --out RUN/pairs
    python -m research.reading_contexts compare --domain D \\
        --baseline research/results/writer/D/verdict.json --pairs RUN/pairs/report.json \\
        --run LABEL SUMMARY CARD [--run ...] --out FILE

- ``pairs`` (in the data folder whose knowledge base the adapter is trained and evaluated
  on): the reading pairs of a synth run twice from the same passages, layered mode's own
  contexts (``plain.jsonl``, what ``assistant train --reading --spread 0`` writes) and
  spread ones (``spread.jsonl``, ``--spread SHARE``), and ``report.json``: how many
  passages and sentences layered mode showed the questions of synth's training file and
  of a dev set of people's questions (``research.dev_questions``: one hand-written
  training question per fact, which no reading adapter learns), at which place the fact
  stood, and the kinds of pairs made.
- ``compare``: the domain's writer verdict (``--baseline``) holds a reading adapter
  trained on layered mode's own contexts from another synth run, and prompt mode, on the
  hand-written held-out questions (``reading``, with its command). Each ``--run`` is an
  `assistant eval` summary of layered mode with a reading adapter on the same questions
  and engine (checked) and that adapter's card: first the control (``plain.jsonl``), then
  the spread adapters (``spread.jsonl``), each compared with the first question by
  question.

Why a script: the figures stay in generated files, read from the files that hold them.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from research import emit
from research.writer_verdict import _card, _own

RESULTS = Path(__file__).resolve().parent / "results" / "reading_contexts"


def shares(counts: dict[str, int]) -> str:
    """``{"1": 30, "2": 10}`` -> "1: 75%, 2: 25%" (keys in order)."""
    total = sum(counts.values()) or 1
    return ", ".join(f"{k}: {v / total:.0%}"
                     for k, v in sorted(counts.items(), key=lambda kv: int(kv[0])))


def _seen(shape: dict[str, dict[str, int]]) -> str:
    """One question set's contexts: how many passages (sentences) and the fact's place."""
    n = sum(shape["passages"].values())
    text = (f"{n} questions, passages shown {shares(shape['passages'])}, the fact's passage "
            f"at place {shares(shape['fact_passage_place'])}")
    if "sentences" in shape:
        text += (f", sentences shown {shares(shape['sentences'])}, the fact's first sentence "
                 f"at place {shares(shape['fact_sentence_place'])}")
    return text + " (place 0: the fact not shown)"


def row(label: str, layered: dict[str, float], minutes: float | None) -> str:
    took = f"{minutes:.1f}" if minutes is not None else "n/a"
    return (f"| {label} | {layered['recall']:.2f} ({layered['own_words_share']:.0%}) | "
            f"{layered['own_words_recall']:.2f} | {took} |")


def markdown(files: list[dict[str, Any]]) -> str:
    """Per domain: layered mode with each reading adapter and prompt mode on people's
    questions, recall (own-words share), own-words recall and training minutes; then what
    the contexts looked like, the pairs made, the runs question by question, the commands."""
    lines = ["| domain, answers of | recall (own words) | own-words recall | training min |",
             "|---|---:|---:|---:|"]
    for f in files:
        base = f["baseline"]
        lines.append(row(f"{f['domain']}, layered, reading adapter on layered mode's own "
                         f"contexts, another synth run (the writer verdict's, "
                         f"{base['adapter']})", base["layered"], base["minutes"]))
        for run in f["runs"]:
            lines.append(row(f"{f['domain']}, layered, {run['label']}", run["layered"],
                             run["minutes"]))
        lines.append(row(f"{f['domain']}, prompt mode (no adapter; the writer verdict's "
                         "hand-written run)", base["prompt"], None))
    lines.append("")
    for f in files:
        p = f["pairs"]
        lines.append(f"- {f['domain']}, what layered mode showed: "
                     + "; ".join(f"{who}: {_seen(p[key])}" for who, key in (
                         ("synth's training file (the writer's questions and rule-made "
                          "validation ones)", "synth"),
                         ("people's questions (dev)", "dev"))) + ".")
        lines.append(f"- {f['domain']}, the pairs: {_pairs(p['spread'], p['spread_share'])}; "
                     f"the control's (layered mode's own contexts): "
                     f"{_pairs(p['plain'], 0.0)}.")
        for run in f["runs"][1:]:
            pair = run.get("against_first")
            if pair:
                own = (f"; the model's own text before the check: more on "
                       f"{pair['own_better']}, less on {pair['own_worse']}"
                       if "own_better" in pair else "")
                lines.append(
                    f"- {f['domain']}, question by question, {run['label']} against "
                    f"{f['runs'][0]['label']}, of {pair['questions']}: more recall on "
                    f"{pair['better']}, less on {pair['worse']}{own}.")
    lines.append("")
    for f in files:
        lines.append(f"- {f['domain']}: `{f['command']}`; its pairs: "
                     f"`{f['pairs']['command']}`; the baseline's: `{f['baseline']['command']}`")
    return "\n".join(lines) + "\n"


def _pairs(counts: dict[str, int], share: float) -> str:
    """One pair file's counts, in words."""
    made = counts["with_fact"] + counts["distractors_only"]
    text = (f"{made} pairs ({counts['with_fact']} with the fact, "
            f"{counts['distractors_only']} with distractors only)")
    if share:
        if "spread_impossible" in counts:  # before the reasons were counted apart
            kept = f"{counts['spread_impossible']} kept their own (no other passage in reach, " \
                "no room beside the fact, or it would drop part of it)"
        else:
            kept = (f"{counts['no_other_passage']} with no other passage in reach, "
                    f"{counts['no_room']} with no room beside the fact and "
                    f"{counts['drop_fact']} that would drop part of it kept their own")
        text += (f", drawn for a spread context at share {share:g}: {counts['spread']} "
                 f"spread, {kept}")
    return text + f"; {counts['fact_not_retrieved']} questions left out (fact not shown)"


def shape(examples: list[Any], contexts: Any) -> dict[str, dict[str, int]]:
    """How many passages and sentences layered mode shows each question, and the place of
    the first passage and of the first sentence (in reading order) holding its fact (0:
    none shown)."""
    from assistant.text import contains

    counts: dict[str, Counter[str]] = {k: Counter() for k in (
        "passages", "fact_passage_place", "sentences", "fact_sentence_place")}
    for example in examples:
        lines = contexts(example.question).lines
        passages = sorted({ln.passage for ln in lines})
        ordered = sorted(lines, key=lambda ln: (ln.passage, ln.position))
        stating = [i for i, ln in enumerate(ordered)
                   if any(contains(ln.text, m) for m in example.must_contain)]
        counts["passages"][str(len(passages))] += 1
        counts["sentences"][str(len(lines))] += 1
        counts["fact_passage_place"][
            str(passages.index(ordered[stating[0]].passage) + 1 if stating else 0)] += 1
        counts["fact_sentence_place"][str(stating[0] + 1 if stating else 0)] += 1
    return {k: dict(v) for k, v in counts.items()}


def make_pairs(args: argparse.Namespace) -> dict[str, Any]:
    from assistant.services import Services
    from assistant.settings import Settings
    from assistant.training.data import load_examples
    from assistant.training.reading import pipeline_contexts, write_reading_file

    settings = Settings()
    contexts = functools.cache(pipeline_contexts(Services(settings).pipeline, args.domain))
    examples = load_examples(args.synth)
    report: dict[str, Any] = {"domain": args.domain, "data_dir": str(settings.data_dir),
                              "synth": shape(examples, contexts),
                              "dev": shape(load_examples(args.dev), contexts),
                              "spread_share": args.spread}
    for name, share in (("plain", 0.0), ("spread", args.spread)):
        report[name] = write_reading_file(examples, contexts, args.out / f"{name}.jsonl",
                                          args.seed, True, share)
    return report


def paired(first: Path, other: Path) -> dict[str, int]:
    """Question by question (in-scope layered answers in both runs' results.csv): how many
    the other run recalls more of than the first, and fewer; and the same for the recall of
    the model's own text (``generated_recall``, before the answer check)."""
    def recalls(summary: Path) -> dict[str, tuple[float, float]]:
        with (summary.parent / "results.csv").open(encoding="utf-8") as f:
            return {r["question"]: (float(r["recall"] or 0.0),
                                    float(r.get("generated_recall") or 0.0))
                    for r in csv.DictReader(f) if r["mode"] == "layered" and r["must_contain"]}

    a, b = recalls(first), recalls(other)
    both = [q for q in a if q in b]
    return {"questions": len(both), "better": sum(b[q][0] > a[q][0] for q in both),
            "worse": sum(b[q][0] < a[q][0] for q in both),
            "own_better": sum(b[q][1] > a[q][1] for q in both),
            "own_worse": sum(b[q][1] < a[q][1] for q in both)}


def compare(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    verdict = json.loads(args.baseline.read_text())
    reading = verdict["reading"]
    pairs = json.loads(args.pairs.read_text())
    if verdict.get("domain") != args.domain or pairs.get("domain") != args.domain:
        parser.error(f"--baseline and --pairs must both be of {args.domain}")
    runs = []
    for label, summary_path, card_path in args.run:
        summary = json.loads(Path(summary_path).read_text())
        card = _card(json.loads(Path(card_path).read_text()))
        if summary.get("engine") != reading.get("engine"):
            parser.error(f"{summary_path} ran on {summary.get('engine')}, the baseline on "
                         f"{reading.get('engine')}")
        if not str(summary.get("questions_file", "")).endswith(f"{args.domain}/qa/test.jsonl"):
            parser.error(f"{summary_path} did not answer {args.domain}'s hand-written held-out "
                         "questions, as the baseline did")
        if summary.get("adapter") != card["name"]:
            parser.error(f"{card_path} is {card['name']}'s card, the run used "
                         f"{summary.get('adapter')}")
        runs.append({"label": label, "summary": summary_path, "adapter": summary.get("adapter"),
                     "questions": summary.get("questions_file"), "engine": summary.get("engine"),
                     "layered": _own(summary, "layered"), "card": card,
                     "minutes": card["minutes"]})
    for run in runs[1:]:
        run["against_first"] = paired(Path(runs[0]["summary"]), Path(run["summary"]))
    return {"domain": args.domain,
            "baseline": {"adapter": reading["adapter"], "layered": reading["layered"],
                         "prompt": reading["prompt"], "engine": reading.get("engine"),
                         "minutes": verdict.get("reading_card", {}).get("minutes"),
                         "command": verdict["command"]},
            "pairs": pairs, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("pairs", help="reading pairs, plain and spread, and their report")
    p.add_argument("--domain", required=True)
    p.add_argument("--synth", type=Path, required=True, help="synth's train.jsonl")
    p.add_argument("--dev", type=Path, required=True, help="people's questions (dev set)")
    p.add_argument("--spread", type=float, default=0.8, help="share for spread.jsonl (0.8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="folder for the pairs and report")
    c = sub.add_parser("compare", help="the results file: spread runs against the baseline")
    c.add_argument("--domain", required=True)
    c.add_argument("--baseline", type=Path, required=True,
                   help="research/results/writer/DOMAIN/verdict.json")
    c.add_argument("--pairs", type=Path, required=True, help="report.json of `pairs`")
    c.add_argument("--run", nargs=3, action="append", required=True,
                   metavar=("LABEL", "SUMMARY", "CARD"),
                   help="layered mode with a reading adapter: its eval summary.json "
                   "(hand-written held-out questions) and its card.json; repeatable")
    c.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from bench.freshness import current_commit

    command = "python -m research.reading_contexts " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    if args.step == "pairs":
        report = {"command": command, "commit": current_commit(), **make_pairs(args)}
        emit(report, args.out / "report.json")
    else:
        emit({"command": command, "commit": current_commit(), **compare(args, parser)},
             args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
