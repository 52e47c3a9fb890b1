"""The verdict from documents alone, with the learned question writer, against the verdict
from hand-written questions: does a user with documents only reach the same decision?

    python -m research.writer_verdict --domain D --handwritten SUMMARY
        (--synth-on-handwritten SUMMARY | --earlier VERDICT) [--synth-on-synthesized SUMMARY...]
        [--reading SUMMARY...] [--reading-card CARD] [--reading-synth-report REPORT]
        [--synth-report REPORT] [--adapter-card CARD] [--writer-card CARD] --out DIR

Reads `assistant eval` summaries (``summary.json``):
- ``--handwritten``: the adapter trained on the hand-written pairs, on the hand-written
  held-out questions (the verdict a user with a question file gets);
- ``--synth-on-handwritten``: the adapter trained only on synthesized pairs, on the same
  hand-written questions (is what it learned usable on people's questions?);
- ``--synth-on-synthesized``: that adapter on synth's own held-out questions (the verdict a
  user with documents only gets);
- ``--reading``: layered and prompt mode with the reading adapter trained from documents
  only, on the hand-written questions (``--reading-card``: its card, for the training time;
  ``--reading-synth-report``: the synth run its pairs came from);
- several summaries after ``--synth-on-synthesized`` or ``--reading``: runs of the same
  adapter and questions with different modes, taken together;
- ``--earlier``: an earlier verdict of the domain whose closed-book figures (its adapter,
  synth run and cards) are kept as they are, with the command that made them. Why: the
  closed-book run takes hours on this machine and its figures do not change when the
  reading adapter and the documents-only verdict are measured later.

Writes ``verdict.json`` (with ``text``, the Markdown that bench.readme renders) and checks the
three targets: closed-book recall >= 70% of the hand-written adapter's; layered mode with the
reading adapter at least prompt mode's recall and more answers in the model's own words; the
documents-only verdict names the same best mode, every mode within 0.10. Why a script: the
figures stay in generated files, read from the files that hold them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

MODES = ("prompt", "adapter", "layered")
# what an earlier verdict's closed-book run measured (kept by --earlier)
CLOSED_BOOK_KEYS = ("closed_book", "adapter_on_handwritten", "wording", "synth",
                    "adapter_card", "writer_card")
TOLERANCE = 0.10
SHARE = 0.70


def _load(path: Path | None) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path and path.is_file() else None


def _merged(paths: list[Path] | None) -> dict[str, Any] | None:
    """One summary from the evaluations of one adapter on one questions file, each run with
    some of the modes (a dev-set mode wanted first, the rest after): their modes side by
    side. Refused when two runs give the same mode or ran on other engines, adapters or
    questions."""
    summaries = [s for s in (_load(p) for p in paths or []) if s is not None]
    if len(summaries) <= 1:
        return summaries[0] if summaries else None
    first, per_mode = summaries[0], {}
    for summary in summaries:
        for key in ("engine", "adapter", "questions_file"):
            if summary.get(key) != first.get(key):
                raise SystemExit(f"summaries to merge differ in {key}: "
                                 f"{first.get(key)!r} and {summary.get(key)!r}")
        for mode, figures in summary["per_mode"].items():
            if mode in per_mode:
                raise SystemExit(f"two summaries to merge both answered in {mode} mode")
            per_mode[mode] = figures
    return {**first, "per_mode": per_mode}


def _recalls(summary: dict[str, Any]) -> dict[str, float]:
    return {m: round(float(s["recall"]), 3) for m, s in summary["per_mode"].items()
            if m in MODES and s.get("recall") is not None}


def _own(summary: dict[str, Any], mode: str) -> dict[str, float]:
    s = summary["per_mode"][mode]
    return {"recall": round(float(s["recall"]), 3),
            "own_words_recall": round(float(s.get("generated_recall") or 0.0), 3),
            "own_words_share": round(1.0 - float(s.get("quoted_rate") or 0.0), 3)}


def closed_book(hand: dict[str, Any], synth_hand: dict[str, Any]) -> dict[str, Any]:
    ours = float(synth_hand["per_mode"]["adapter"]["recall"])
    theirs = float(hand["per_mode"]["adapter"]["recall"])
    share = ours / theirs if theirs else 0.0
    return {"synthesized_pairs_adapter": round(ours, 3), "handwritten_pairs_adapter":
            round(theirs, 3), "share": round(share, 3), "target_share": SHARE,
            "met": share >= SHARE}


def reading(summary: dict[str, Any], hand: dict[str, Any]) -> dict[str, Any]:
    """Layered mode with the reading adapter against prompt mode. Prompt mode uses no
    adapter, so a reading run without it takes it from the hand-written verdict's run (same
    questions; the engine must be the same, checked)."""
    own_prompt = "prompt" in summary["per_mode"]
    if not own_prompt and hand.get("engine") != summary.get("engine"):
        raise SystemExit("--reading has no prompt mode and --handwritten ran on another engine")
    layered = _own(summary, "layered")
    prompt = _own(summary if own_prompt else hand, "prompt")
    return {"layered": layered, "prompt": prompt, "adapter": summary.get("adapter"),
            "prompt_from": "reading" if own_prompt else "handwritten",
            "met": layered["recall"] >= prompt["recall"]
            and layered["own_words_share"] > prompt["own_words_share"]}


def agreement(hand: dict[str, Any], docs: dict[str, Any]) -> dict[str, Any]:
    h, d = _recalls(hand), _recalls(docs)
    modes = [m for m in MODES if m in h and m in d]
    best_h = max(modes, key=lambda m: h[m])
    best_d = max(modes, key=lambda m: d[m])
    gaps = {m: round(d[m] - h[m], 3) for m in modes}
    within = all(abs(g) <= TOLERANCE for g in gaps.values())
    return {"handwritten": {m: h[m] for m in modes}, "documents": {m: d[m] for m in modes},
            "gap": gaps, "best_handwritten": best_h, "best_documents": best_d,
            "same_best": best_h == best_d, "within_tolerance": within,
            "tolerance": TOLERANCE, "met": best_h == best_d and within}


def recipe_summary(results: Path, key: str) -> dict[str, Any] | None:
    """A ``research.training_recipes`` entry as a one-mode summary: the adapter trained on
    the hand-written pairs, its recall on the hand-written held-out questions in adapter mode.
    Why: a domain whose hand-written adapter is not bundled has its baseline there."""
    entry = (_load(results) or {}).get(key)
    if entry is None:
        return None
    return {"adapter": key, "source": f"{results} [{key}]: {entry['command']}",
            "per_mode": {"adapter": {"recall": entry["held_out_recall"]}}}


def build(args: argparse.Namespace) -> dict[str, Any]:
    hand = _load(args.handwritten) if args.handwritten else (
        recipe_summary(args.recipes, args.handwritten_recipe) if args.handwritten_recipe
        else None)
    synth_hand = _load(args.synth_on_handwritten)
    synth_docs = _merged(args.synth_on_synthesized)
    earlier = _load(args.earlier)
    if hand is None or (synth_hand is None and earlier is None):
        raise SystemExit("--handwritten (or --handwritten-recipe) and --synth-on-handwritten "
                         "(or --earlier) are required")
    verdict: dict[str, Any] = {"domain": args.domain}
    if synth_hand is not None:
        verdict["closed_book"] = closed_book(hand, synth_hand)
        verdict["closed_book"]["handwritten_from"] = hand.get("source") or str(args.handwritten)
        verdict["adapter_on_handwritten"] = _recalls(synth_hand)
    elif earlier is not None:
        for key in CLOSED_BOOK_KEYS:
            if key in earlier:
                verdict[key] = earlier[key]
        verdict["earlier_command"] = earlier.get("earlier_command") or earlier["command"]
    verdict["handwritten"] = _recalls(hand)
    verdict["handwritten_engine"] = hand.get("engine")
    if synth_docs is not None and len(_recalls(hand)) > 1:  # a verdict needs several modes
        verdict["agreement"] = agreement(hand, synth_docs)
    read = _merged(args.reading)
    if read is not None:
        verdict["reading"] = reading(read, hand)
        verdict["reading"]["on_handwritten"] = _recalls(read)
        verdict["reading"]["engine"] = read.get("engine")
    if synth_docs is not None:
        verdict["documents_engine"] = synth_docs.get("engine")
        verdict["documents_adapter"] = synth_docs.get("adapter")
    card = _load(args.reading_card)
    if card is not None:
        verdict["reading_card"] = _card(card)
    synth_run = _load(args.reading_synth_report)
    if synth_run is not None:
        verdict["reading_synth"] = _synth(synth_run)
    report = _load(args.synth_report)
    if report is not None and args.synth_report is not None and synth_hand is not None:
        verdict["wording"] = wording_of(args.synth_report.parent, synth_hand,
                                        args.synth_on_handwritten)
    if report is not None:
        verdict["synth"] = _synth(report)
    for key, path in (("adapter_card", args.adapter_card), ("writer_card", args.writer_card)):
        card = _load(path)
        if card is not None:
            verdict[key] = _card(card)
    verdict["command"] = "python -m research.writer_verdict " + " ".join(
        shlex.quote(a) for a in (args.argv or []))
    verdict["text"] = render(verdict)
    return verdict


def _synth(report: dict[str, Any]) -> dict[str, Any]:
    synth = {k: report.get(k) for k in ("facts_kept", "train_pairs", "model_pairs",
                                       "validation_pairs", "test_questions", "generator")}
    synth["held_out_overlap"] = report["held_out_overlap"]["mean"]
    return synth


def _card(card: dict[str, Any]) -> dict[str, Any]:
    return {"name": card.get("name"), "minutes": round(card["seconds"] / 60, 1),
            "epochs_run": card.get("epochs_run"), "stopped_early": card.get("stopped_early"),
            "examples": card.get("data", {}).get("examples")}


def wording_of(synth_dir: Path, synth_hand: dict[str, Any],
               synth_hand_path: Path) -> dict[str, Any] | None:
    """How near the hand-written questions are worded to the writer's training questions of
    the same fact (``research.synth_verdict.wording``), from the files beside the synth report
    and the evaluation summary. Why: it is the measured cause when the closed-book adapter
    misses people's questions."""
    from research.synth_verdict import wording

    questions = Path(synth_hand["questions_file"])
    results = synth_hand_path.parent / "results.csv"
    train = synth_dir / "train.jsonl"
    if not (questions.is_file() and results.is_file() and train.is_file()):
        return None
    return wording(questions, questions.parent / "train.jsonl", train, results,
                   synth_dir / "test.jsonl")


def render(v: dict[str, Any]) -> str:
    """The domain's table and targets, in Markdown."""
    r = v.get("reading")
    lines = [f"**{v['domain']}**", "", "| mode | hand-written verdict | from documents only "
             "| closed-book synthesized-pairs adapter on hand-written questions "
             "| reading adapter from documents on hand-written questions |",
             "|---|---:|---:|---:|---:|"]
    a = v.get("agreement")
    for mode in MODES:
        hand = (a["handwritten"] if a else v.get("handwritten", {})).get(mode)
        docs = a["documents"].get(mode) if a else None
        ours = v["adapter_on_handwritten"].get(mode)
        read = (r or {}).get("on_handwritten", {}).get(mode)
        lines.append(f"| {mode} | {_f(hand)} | {_f(docs)} | {_f(ours)} | {_f(read)} |")
    engines = [f"{label}: {v[key]}" for label, key in (
        ("hand-written verdict", "handwritten_engine"), ("from documents", "documents_engine"))
        if v.get(key)]
    if r and r.get("engine"):
        engines.append(f"reading adapter: {r['engine']}")
    if engines:
        earlier = "; the closed-book column: local (the earlier run below)" if v.get(
            "earlier_command") else ""
        lines += ["", "Answering engine, " + "; ".join(engines) + earlier + "."]
    c = v["closed_book"]
    lines += ["", f"- Closed-book adapter from documents only: {_f(c['synthesized_pairs_adapter'])}"
              f" on the hand-written questions, {c['share']:.0%} of the hand-written pairs' "
              f"adapter ({_f(c['handwritten_pairs_adapter'])}); target 70%: "
              f"{_met(c['met'])}."]
    if c.get("handwritten_from", "").startswith("research/"):
        lines.append(f"- The hand-written pairs' adapter: {c['handwritten_from']} (the training "
                     "defaults, answers of at most 48 new tokens there, 64 here).")
    if a and v.get("documents_adapter"):
        lines.append(f"- From documents only: synth's held-out questions, answered with the "
                     f"adapter `{v['documents_adapter']}` in adapter and layered mode.")
    if a:
        lines.append(f"- Best mode: hand-written {a['best_handwritten']}, from documents "
                     f"{a['best_documents']}; every mode within {a['tolerance']:.2f}: "
                     f"{_met(a['within_tolerance'])}; target: {_met(a['met'])}.")
    if r:
        lines.append(f"- Layered mode with the reading adapter `{r['adapter']}` (documents "
                     f"only): recall {_f(r['layered']['recall'])} against prompt mode's "
                     f"{_f(r['prompt']['recall'])}; answers in the model's own words "
                     f"{r['layered']['own_words_share']:.0%} against "
                     f"{r['prompt']['own_words_share']:.0%} (own-words recall "
                     f"{_f(r['layered']['own_words_recall'])} against "
                     f"{_f(r['prompt']['own_words_recall'])}); target: {_met(r['met'])}."
                     + (" Prompt mode (no adapter) from the hand-written verdict's run."
                        if r.get("prompt_from") == "handwritten" else ""))
    if v.get("reading_card"):
        rc = v["reading_card"]
        lines.append(f"- Training the reading adapter from documents: {rc['minutes']} min, "
                     f"{_epochs(rc['epochs_run'])} on {rc['examples']} pairs, on the 2-core "
                     "machine (target under 30 min); the training alone: the synth run and "
                     "the pairs' passages come before it, and what ran beside it, in "
                     "research/results/writer/README.md.")
    if v.get("reading_synth"):
        s = v["reading_synth"]
        lines.append(f"- Its synth run: {s['facts_kept']} facts, {s['train_pairs']} training "
                     f"pairs, {s['test_questions']} held-out questions (made by rule).")
    if v.get("earlier_command"):
        lines.append(f"- The closed-book figures come from an earlier run: "
                     f"`{v['earlier_command']}`.")
    if v.get("adapter_card"):
        ac = v["adapter_card"]
        lines.append(f"- Training the closed-book adapter from documents: {ac['minutes']} min, "
                     f"{_epochs(ac['epochs_run'])} on {ac['examples']} pairs, on the 2-core "
                     "machine shared with other jobs (target under 30 min).")
    if v.get("synth"):
        s = v["synth"]
        lines.append(f"- Synth: {s['facts_kept']} facts, {s['train_pairs']} training pairs "
                     f"({s['model_pairs']} written by the writer), {s['validation_pairs']} "
                     f"rule-made validation questions, {s['test_questions']} held-out; a "
                     f"held-out question shares on average {s['held_out_overlap']} of its "
                     "content words with its fact's nearest training question.")
    w = v.get("wording")
    if w:
        lines.append(
            f"- Where the closed-book recall goes: the synthesized pairs state the facts of "
            f"{w['covered']} of the {w['questions']} hand-written questions, and on those the "
            f"adapter recalls {_f(w['adapter_recall_covered'])}. A person's question shares "
            f"{_f(w['overlap_synthesized'])} of its content words with the nearest written "
            f"training question of its fact, and {_f(w['overlap_handwritten'])} with the "
            f"nearest hand-written one ({w['phrasings_synthesized']} and "
            f"{w['phrasings_handwritten']} phrasings per fact).")
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _epochs(n: int | None) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", required=True)
    for name in ("handwritten", "synth-on-handwritten", "reading-card",
                 "reading-synth-report", "earlier", "synth-report", "adapter-card",
                 "writer-card"):
        parser.add_argument(f"--{name}", type=Path)
    for name in ("synth-on-synthesized", "reading"):  # one run or several, each some modes
        parser.add_argument(f"--{name}", type=Path, nargs="+", metavar="SUMMARY")
    parser.add_argument("--handwritten-recipe", metavar="NAME@DOMAIN",
                        help="instead of --handwritten: the hand-written pairs' adapter as an "
                        "entry of the recipes file (adapter mode only)")
    parser.add_argument("--recipes", type=Path,
                        default=Path("research/results/training_recipes.json"),
                        help="the recipes file for --handwritten-recipe")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    verdict = build(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "verdict.json").write_text(json.dumps(verdict, indent=2) + "\n")
    print(verdict["text"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
