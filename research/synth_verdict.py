"""Does the verdict from synthesized questions agree with the one from hand-written ones?

    python -m research.synth_verdict HANDWRITTEN_DIR SYNTHESIZED_DIR [--baseline FILE]
        [--cards HAND_CARD SYNTH_CARD] [--out DIR]

Reads the ``summary.json`` of two `assistant eval` runs over the same modes and adapter (one
on a domain's hand-written held-out questions, one on the questions `assistant synth` made)
and writes ``verdict.json`` and ``summary.md`` into DIR: each mode's fact recall on both,
the order of the modes by recall on each, and whether they agree (same order, each mode
within 0.10: the test of agreement). With ``--baseline`` (the eval summary.json of the adapter
trained on the hand-written training file) it adds the share of that adapter's recall which
the adapter trained on synthesized pairs reached; with ``--cards`` (both adapters'
card.json) it states both recipes and whether they are the same, since a share between
different recipes also measures the recipes. With ``--train`` (both training files) it
measures how much each file's answers repeat their questions and how many adapter-mode
answers restate the question instead of answering (``RESTATES`` of its content words): a
training file whose questions nearly copy their answers teaches copying, not facts. It also
measures (``wording``) how far the hand-written questions are worded from each training
file's phrasings of the same fact, and the adapter's recall on the facts it was trained on.
Why a script: the figures stay in generated files, read from the files that hold them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TOLERANCE = 0.10  # agreement: "each mode's recall within 0.10"


def recalls(summary: dict[str, Any]) -> dict[str, float]:
    return {m: round(float(s["recall"]), 3) for m, s in summary["per_mode"].items()
            if s.get("recall") is not None}


def compare(hand: dict[str, Any], synth: dict[str, Any]) -> dict[str, Any]:
    """Recall per mode on both question sets, their orders, and whether they agree."""
    a, b = recalls(hand), recalls(synth)
    modes = [m for m in a if m in b]
    order_a = sorted(modes, key=lambda m: -a[m])
    order_b = sorted(modes, key=lambda m: -b[m])
    gaps = {m: round(b[m] - a[m], 3) for m in modes}
    return {
        "modes": modes, "handwritten_recall": a, "synthesized_recall": b,
        "gap": gaps, "handwritten_order": order_a, "synthesized_order": order_b,
        "same_order": order_a == order_b,
        "within_tolerance": all(abs(g) <= TOLERANCE for g in gaps.values()),
        "tolerance": TOLERANCE,
    }


def render(result: dict[str, Any]) -> str:
    lines = ["| mode | fact recall, hand-written questions | fact recall, synthesized questions "
             "| gap |", "|---|---:|---:|---:|"]
    for m in result["modes"]:
        lines.append(f"| {m} | {result['handwritten_recall'][m]:.2f} | "
                     f"{result['synthesized_recall'][m]:.2f} | {result['gap'][m]:+.2f} |")
    lines += ["", f"Order by recall, hand-written: {' > '.join(result['handwritten_order'])}; "
              f"synthesized: {' > '.join(result['synthesized_order'])}. Same order: "
              f"{'yes' if result['same_order'] else 'no'}; every mode within "
              f"{result['tolerance']:.2f}: {'yes' if result['within_tolerance'] else 'no'}."]
    recipes = result.get("recipes")
    if recipes:
        lines += ["", "Recipes: hand-written adapter " + _recipe(recipes["handwritten"])
                  + "; synthesized-pairs adapter " + _recipe(recipes["synthesized"])
                  + (" (the same recipe)." if recipes["same"] else
                     ": **not the same recipe**, so the share below also measures the recipes.")]
    if result.get("copying"):
        lines += ["", copying_text(result["copying"])]
    if "wording" in result:
        lines += ["", wording_text(result["wording"])]
    if "baseline" in result:
        b = result["baseline"]
        lines += ["", f"Adapter mode on the hand-written questions: {b['adapter_recall']:.2f}, "
                  f"{b['share']:.0%} of {b['baseline_recall']:.2f} (the hand-written training "
                  f"file's adapter); target {b['target_share']:.0%}: "
                  f"{'met' if b['met'] else 'not met'}."]
    return "\n".join(lines)


def _adapter_rows(results_csv: Path) -> list[dict[str, str]]:
    import csv

    with results_csv.open(newline="", encoding="utf-8") as handle:
        return [r for r in csv.DictReader(handle)
                if r["mode"] == "adapter" and r["out_of_scope"] != "True" and not r["error"]]


def copying(hand_train: Path, synth_train: Path, hand_results: Path | None,
            synth_results: Path) -> dict[str, Any]:
    """Share of each training file's pairs whose answer restates its question, and of each
    adapter's answers (adapter mode, hand-written questions) that restate the question."""
    from assistant.jsonl import read_objects
    from assistant.training.rewording import RESTATES, restates

    def share(pairs: list[tuple[str, str]]) -> dict[str, Any]:
        hits = sum(restates(q, a) for q, a in pairs)
        return {"restated": hits, "of": len(pairs), "share": round(hits / len(pairs), 3)}

    out: dict[str, Any] = {"threshold": RESTATES}
    for name, path in (("handwritten_train", hand_train), ("synthesized_train", synth_train)):
        out[name] = share([(r["question"], r["answer"]) for _, r in read_objects(path)])
    for name, results in (("handwritten_adapter", hand_results),
                          ("synthesized_adapter", synth_results)):
        if results is not None and results.is_file():
            out[name] = share([(r["question"], r["answer"]) for r in _adapter_rows(results)])
    return out


def nearest_overlap(questions: Path, train: Path) -> float | None:
    """Mean, over a test file's in-scope questions, of the content-word overlap with the
    nearest training phrasing of the same fact (``fact_id``): how close to its training words
    a test set asks. Why: an adapter asked in nearly its training words looks far better than
    one asked in other words, so two test sets far apart on this disagree on adapter mode."""
    import statistics

    from assistant.jsonl import read_objects
    from assistant.training.rewording import overlap

    phrasings: dict[str | None, list[str]] = {}  # rows without a fact_id share one entry
    for _, row in read_objects(train):
        phrasings.setdefault(row.get("fact_id"), []).append(row["question"])
    near = [max(overlap(r["question"], q) for q in phrasings[r.get("fact_id")])
            for _, r in read_objects(questions)
            if not r.get("out_of_scope") and r.get("fact_id") in phrasings]
    return round(statistics.mean(near), 2) if near else None


def wording(questions: Path, hand_train: Path, synth_train: Path,
            synth_results: Path, synth_questions: Path | None = None) -> dict[str, Any]:
    """How far the hand-written held-out questions are worded from each training file.

    For each in-scope hand-written question: is its fact in the synthesized training file at
    all (a pair that states it, ``training_recipes.states_fact``), how much its content words
    overlap the nearest phrasing of the same fact in each file, and the synthesized-pairs adapter's
    recall on the covered facts. Why: an adapter recalls a fact from wordings near the ones
    it was trained on; a fact that is covered but asked in other words stays out of reach.
    """
    import csv
    import statistics

    from assistant.jsonl import read_objects
    from assistant.training.rewording import overlap
    from research.training_recipes import states_fact

    test = [r for _, r in read_objects(questions) if not r.get("out_of_scope")]
    hand = [r for _, r in read_objects(hand_train)]
    synth = [r for _, r in read_objects(synth_train)]
    with synth_results.open(newline="", encoding="utf-8") as handle:
        recall = {r["question"]: float(r["recall"]) for r in csv.DictReader(handle)
                  if r["mode"] == "adapter" and r["recall"] not in ("", None)}
    covered, near_synth, covered_recall = 0, [], []
    for row in test:
        same = [s["question"] for s in synth if states_fact(s, row)]
        if same:
            covered += 1
            near_synth.append(max(overlap(row["question"], q) for q in same))
            if row["question"] in recall:
                covered_recall.append(recall[row["question"]])

    def per_fact(rows: list[dict[str, Any]]) -> float:
        facts = {r.get("fact_id") for r in rows}
        return round(len(rows) / len(facts), 1) if facts else 0.0

    def mean(values: list[float]) -> float | None:
        return round(statistics.mean(values), 2) if values else None

    out = {"questions": len(test), "covered": covered,
           "adapter_recall_covered": mean(covered_recall),
           "overlap_synthesized": mean(near_synth),
           "overlap_handwritten": nearest_overlap(questions, hand_train),
           "phrasings_synthesized": per_fact(synth), "phrasings_handwritten": per_fact(hand)}
    if synth_questions is not None and synth_questions.is_file():
        out["heldout_overlap_synthesized"] = nearest_overlap(synth_questions, synth_train)
    return out


def wording_text(w: dict[str, Any]) -> str:
    """One paragraph: covered facts, recall on them, and how near each file's wordings are."""
    return (f"The synthesized training file holds the facts of {w['covered']} of the "
            f"{w['questions']} hand-written questions, and on those the adapter's recall is "
            f"{w['adapter_recall_covered']:.2f}: the facts are there, the wordings are not. A "
            "hand-written question shares on average "
            f"{w['overlap_synthesized']:.2f} of its content words with the nearest synthesized "
            f"phrasing of its fact, against {w['overlap_handwritten']:.2f} with the nearest "
            f"hand-written one; the files have {w['phrasings_synthesized']} and "
            f"{w['phrasings_handwritten']} phrasings per fact."
            + (f" The synthesized held-out questions share {w['heldout_overlap_synthesized']:.2f}"
               " of their content words with the nearest synthesized training phrasing of their "
               "fact: adapter mode is asked in nearly its training words there, and in other "
               "words on the hand-written questions."
               if w.get("heldout_overlap_synthesized") is not None else ""))


def copying_text(c: dict[str, Any]) -> str:
    """One paragraph on how much training answers and adapter answers restate questions."""
    def pct(key: str) -> str:
        return f"{c[key]['share']:.0%} ({c[key]['restated']} of {c[key]['of']})"

    text = (f"Restating (answers holding >= {c['threshold']:.0%} of their question's content "
            "words): "
            f"training pairs, synthesized {pct('synthesized_train')}, hand-written "
            f"{pct('handwritten_train')}.")
    if "synthesized_adapter" in c:
        text += (" Adapter-mode answers to the hand-written questions that restate the "
                 f"question: the synthesized-pairs adapter {pct('synthesized_adapter')}"
                 + (f", the hand-written one {pct('handwritten_adapter')}"
                    if "handwritten_adapter" in c else "") + ".")
    return text


RECIPE_KEYS = ("rank", "alpha", "epochs", "patience", "lr", "targets", "val_fraction")


def _card(data: dict[str, Any]) -> dict[str, Any]:
    return data.get("card", data)


def _minutes(card: dict[str, Any]) -> float | None:
    return round(card["seconds"] / 60, 1) if card.get("seconds") else None


def _recipe(h: dict[str, Any]) -> str:
    return ", ".join(f"{k} {h[k]}" for k in RECIPE_KEYS if k in h)


def command(argv: list[str] | None) -> str:
    """The command line that wrote a result, kept inside it (research/README.md)."""
    import shlex

    return shlex.join(["python", "-m", "research.synth_verdict",
                       *(sys.argv[1:] if argv is None else argv)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("handwritten", type=Path, help="eval output folder (hand-written)")
    parser.add_argument("synthesized", type=Path, help="eval output folder (synthesized)")
    parser.add_argument("--baseline", type=Path,
                        help="eval summary.json of the hand-written training file's adapter")
    parser.add_argument("--cards", type=Path, nargs=2, metavar=("HAND_CARD", "SYNTH_CARD"),
                        help="card.json of both adapters (their recipes are compared)")
    parser.add_argument("--train", type=Path, nargs=2, metavar=("HAND_TRAIN", "SYNTH_TRAIN"),
                        help="both training files (how much their answers copy the questions)")
    parser.add_argument("--out", type=Path, help="write verdict.json and summary.md here")
    args = parser.parse_args(argv)
    hand = json.loads((args.handwritten / "summary.json").read_text())
    synth = json.loads((args.synthesized / "summary.json").read_text())
    result = compare(hand, synth)
    result["runs"] = {"handwritten": hand["questions_file"], "synthesized": synth["questions_file"],
                      "adapter": hand.get("adapter"), "n_handwritten": hand["n_questions"],
                      "n_synthesized": synth["n_questions"]}
    if args.cards:
        # a card.json, or a file holding one under "card" (a copy of an adapter's card)
        hand_c, synth_c = (_card(json.loads(path.read_text())) for path in args.cards)
        hand_h, synth_h = hand_c["hyperparameters"], synth_c["hyperparameters"]
        result["recipes"] = {"handwritten": {k: hand_h.get(k) for k in RECIPE_KEYS},
                             "synthesized": {k: synth_h.get(k) for k in RECIPE_KEYS},
                             "same": all(hand_h.get(k) == synth_h.get(k) for k in RECIPE_KEYS),
                             "train_minutes": {  # target: training under 30 minutes
                                 "handwritten": _minutes(hand_c), "synthesized": _minutes(synth_c)}}
    adapter = result["handwritten_recall"].get("adapter")
    if args.baseline and adapter is not None:
        baseline = json.loads(args.baseline.read_text())
        base_recall = round(float(baseline["per_mode"]["adapter"]["recall"]), 3)
        share = adapter / base_recall
        result["baseline"] = {"adapter_recall": adapter, "baseline_recall": base_recall,
                              "baseline_file": str(args.baseline),
                              "baseline_adapter": baseline.get("adapter"),
                              "share": round(share, 3), "target_share": 0.7,
                              "met": share >= 0.7}
    if args.train:
        hand_train, synth_train = args.train  # nargs=2
        result["copying"] = copying(
            hand_train, synth_train,
            args.baseline.parent / "results.csv" if args.baseline else None,
            args.handwritten / "results.csv")
        result["wording"] = wording(Path(hand["questions_file"]), hand_train, synth_train,
                                    args.handwritten / "results.csv",
                                    Path(synth["questions_file"]))
    result["text"] = render(result)
    result["command"] = command(argv)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "verdict.json").write_text(json.dumps(result, indent=2) + "\n")
        runs = result["runs"]
        (args.out / "summary.md").write_text(
            f"# Verdict from synthesized and hand-written questions\n\nAdapter "
            f"`{runs['adapter']}`; hand-written: `{runs['handwritten']}` "
            f"({runs['n_handwritten']} questions); synthesized: `{runs['synthesized']}` "
            f"({runs['n_synthesized']} questions). Written by `{result['command']}`."
            f"\n\n{result['text']}\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
