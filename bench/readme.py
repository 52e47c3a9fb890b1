"""Render the generated blocks of README.md and docs/*.md, so no figure is typed by hand.

    python -m bench.readme           # rewrite every generated block from the committed results
    python -m bench.readme --check   # exit 1 and name the files whose blocks are out of date,
                                     # and the results older than the code they measure

A block is the text between ``<!-- NAME -->`` and ``<!-- /NAME -->``; ``replace_block`` is
the one function that rewrites it, and ``BLOCKS`` says what each NAME renders and from what:

- ``bench:NAME``: ``bench_NAME.markdown(bench/results/NAME.json)`` (``python -m bench.run NAME``)
- ``training``: the QLoRA recipe table, from ``research/results/training_recipes.json``
  (``python -m research.training_recipes``)
- ``eval``, ``eval-headline``, ``eval-targets``: ``bench/results/eval/summary.json``
  (``assistant eval ... --out bench/results/eval``)
- ``eval-engines``: the same questions on the local engine (``bench/results/eval-local/``,
  an earlier headline run kept for this; ``eval-local-same-code/``, modes rerun on the local
  engine with the default engine's run's code; ``eval-local-fp32/``, adapter mode on the
  local engine's unquantized base) and on the default engine, per mode
- ``adapter-precision``: adapter mode by the weights the demo adapter was trained on and the
  engine that serves it, from ``research/results/nf4_trained_adapter/`` and the three runs above
- ``conversations-headline``: follow-up recall with and without the history, from
  ``bench/results/conversations-eval/conversations.json`` (``assistant eval --conversations``)
- ``synth-verdict``: the verdict from synthesized questions beside the hand-written one, one
  table and one sentence, from ``research/results/synth/short/verdict.json``
  (``python -m research.synth_verdict``)
- ``synth-history``: what the earlier verdicts and the same-facts runs measured, one paragraph
  (docs/evaluation.md)
- ``writer-verdict``: with the learned question writer, per demo domain, from
  ``research/results/writer/<domain>/verdict.json`` (``python -m research.writer_verdict``);
  ``documents-verdict`` (README): the demo domain's table and one sentence from it (the
  rule-made ``synth-verdict`` until it exists)
- ``synth-wordings``: the same facts trained from hand-written and synthesized pairs, from
  ``research/results/synth/ablation.json`` (``python -m research.training_recipes --synthesized``)

Research results (research/, one-off studies) are rendered here too; research/README.md says
what each one asks and which command wrote it.
- ``layered-agreement``: layered mode's answer check with and without agreement with the
  ranking, from ``research/results/layered_agreement/*.json``
  (``python -m research.layered_agreement``)
- ``quote-margin``: the answer check showing the quote when the ranking's two best sentences
  are close, replayed per margin, from ``research/results/quote_margin/*.json``
  (``python -m research.quote_margin``)
- ``reading-contexts``: layered mode with reading adapters trained on layered mode's own
  contexts and on spread contexts, on people's questions, from
  ``research/results/reading_contexts/*.json`` (``python -m research.reading_contexts``)
- ``settings``: the ``ASSISTANT_*`` table, from ``assistant/settings.py`` itself

``make bench`` (``python -m bench.run``) calls ``refresh`` after the benchmarks.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
EVAL_SUMMARY = RESULTS / "eval" / "summary.json"
_START = re.compile(r"<!-- ([\w:-]+) -->\n")


def replace_block(text: str, name: str, body: str) -> str | None:
    """``text`` with what lies between ``<!-- name -->`` and ``<!-- /name -->`` replaced by
    ``body`` (markers kept, every such block); None when ``text`` has no such block."""
    marker = re.escape(name)
    pattern = re.compile(rf"(<!-- {marker} -->\n).*?(<!-- /{marker} -->)", re.DOTALL)
    if not pattern.search(text):
        return None
    body = body.rstrip("\n") + "\n"
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text)


# --- what each block renders ------------------------------------------------------------------
# A renderer takes the folder of the file it writes into (for relative links) and returns the
# block's Markdown, or None when its results file is missing (the block is then left as it is).
Renderer = Callable[[Path], "str | None"]


def _bench(name: str) -> Renderer:
    def render(where: Path) -> str | None:
        path = RESULTS / f"{name}.json"
        if not path.is_file():
            return None
        result = json.loads(path.read_text())
        meta = result.get("_meta", {})
        machine = meta.get("machine", {})
        load = machine.get("load_average_1m")
        load_text = f", load average {load} when it finished" if load is not None else ""
        body = importlib.import_module(f"bench.bench_{name}").markdown(result).rstrip() + (
            f"\n\nMeasured by `{meta.get('command')}{' --quick' if meta.get('quick') else ''}` "
            f"on {meta.get('date')} ({machine.get('cores')} cores, torch {machine.get('torch')}"
            f"{load_text}).\n"
        )
        return body + (f"Note: {meta['note']}.\n" if meta.get("note") else "")
    return render


def _training(where: Path) -> str | None:
    from research.training_recipes import RESULTS as recipes
    from research.training_recipes import markdown

    return markdown(json.loads(recipes.read_text())) if recipes.is_file() else None


def _synth_wordings(where: Path) -> str | None:
    from research.training_recipes import wordings_markdown

    return (wordings_markdown(json.loads(SYNTH_ABLATION.read_text()))
            if SYNTH_ABLATION.is_file() else None)


def _summary() -> dict | None:
    return json.loads(EVAL_SUMMARY.read_text()) if EVAL_SUMMARY.is_file() else None


def _eval_source(s: dict) -> str:
    command = f"assistant eval --questions {s['questions_file']}" + (
        f" --adapter {s['adapter']}" if s.get("adapter") else "") + " --out bench/results/eval"
    return (f"From `bench/results/eval/summary.json`, written by `{command}`; "
            "rendered by `python -m bench.readme`.")


def _eval(where: Path) -> str | None:
    """The full evaluation block: table, routing and answer-check notes, verdict, plots."""
    s = _summary()
    if s is None:
        return None
    from assistant.evaluation.report import PLOTS, readme_markdown

    body = readme_markdown(s).rstrip() + "\n"
    images = [f"![{title}]({os.path.relpath(EVAL_SUMMARY.parent / f'{name}.png', where)})"
              for name, title in PLOTS.items() if (EVAL_SUMMARY.parent / f"{name}.png").is_file()]
    if images:
        body += "\n" + "\n".join(images) + "\n"
    return body + "\n" + _eval_source(s) + "\n"


def _eval_headline(where: Path) -> str | None:
    """The README's short version of ``eval``: what was run, the table, verdict, break-even."""
    s = _summary()
    if s is None:
        return None
    from assistant.evaluation.report import RECALL_LEGEND, readme_markdown

    lines = readme_markdown(s).splitlines()
    table = [ln for ln in lines[1:] if ln.startswith("|")]
    # the rest: what the recall columns mean, and the break-even
    notes = [RECALL_LEGEND] + [ln[2:] for ln in lines[1:] if ln.startswith("- Break-even")]
    return "\n\n".join([lines[0], "\n".join(table), " ".join(notes), _eval_source(s)]) + "\n"


# the headline questions on the local engine: an earlier full run, and adapter mode on the
# code the default engine's run used
EVAL_LOCAL = RESULTS / "eval-local" / "summary.json"
EVAL_LOCAL_SAME_CODE = RESULTS / "eval-local-same-code" / "summary.json"
# the same adapter on the local engine's base unquantized: the GGUF's Q4_1 values in fp32
EVAL_LOCAL_FP32 = RESULTS / "eval-local-fp32" / "summary.json"


def _eval_engines(where: Path) -> str | None:
    """The same hand-written questions answered by the local engine and by the default
    engine: per mode, recall shown and in the model's own words, and the noise a changed
    engine's recall is judged against: two standard errors of the mean per-question
    difference (the questions are the same, so the difference is paired). Local runs: the
    earlier headline evaluation (``bench/results/eval-local/``) and, where kept, modes rerun
    on the local engine with the default engine's run's code (``eval-local-same-code/``)."""
    s = _summary()
    if s is None or not (EVAL_SUMMARY.parent / "results.csv").is_file():
        return None
    after = _recall_rows(EVAL_SUMMARY.parent / "results.csv")
    lines = ["| mode | local run | local: recall (own words) | default engine: recall (own "
             "words) | difference | noise (2 s.e.) |", "|---|---|---:|---:|---:|---:|"]
    moved, runs, older = [], [], []
    trained = _adapter_trained(s.get("adapter"))
    for path, label in ((EVAL_LOCAL, "earlier"), (EVAL_LOCAL_SAME_CODE, "same code"),
                        (EVAL_LOCAL_FP32, "fp32 base")):
        if not (path.is_file() and (path.parent / "results.csv").is_file()):
            continue
        local = json.loads(path.read_text())
        before = _recall_rows(path.parent / "results.csv")
        runs.append(f"{label}: {local['date'][:10]}, `{path.parent.relative_to(ROOT)}/`")
        modes = [m for m in local["per_mode"] if m in s["per_mode"]]
        if _before(local["date"], trained) != _before(s["date"], trained):  # other adapters
            older.append(label)
            modes = [m for m in modes if not _uses_adapter(m)]
        for mode in modes:
            a, b = local["per_mode"][mode], s["per_mode"][mode]
            pairs = [(before[k], after[k]) for k in before.keys() & after.keys() if k[0] == mode]
            if a.get("recall") is None or b.get("recall") is None or len(pairs) < 2:
                continue
            d = [y - x for x, y in pairs]
            mean = sum(d) / len(d)
            noise = 2 * (sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d)) ** 0.5
            diff = b["recall"] - a["recall"]
            if abs(diff) > noise:
                moved.append(f"{mode} ({label})")
            lines.append(f"| {mode} | {label} | {a['recall']:.2f} ({_own(a):.2f}) | "
                         f"{b['recall']:.2f} ({_own(b):.2f}) | {diff:+.2f} | {noise:.2f} |")
    if not runs:
        return None
    head = (f"The headline questions ({s['n_in_scope']} in scope) on the default engine "
            f"({s.get('engine', '?')}, {s['date'][:10]}, `bench/results/eval/`) and on the local "
            f"engine (torch, NF4 unless named; {'; '.join(runs)}). The earlier run is older than "
            "the code, so code changes are in its difference too; the same-code run has only "
            "the engine's; the fp32-base run answers on the GGUF's own Q4_1 values unquantized "
            "(`ASSISTANT_QUANT=fp32`), the weights llama.cpp serves.")
    if older and trained:
        head += (f" Of the adapter `{s['adapter']}` (trained {trained[:10]}), the "
                 f"{', '.join(older)} run{'s' if len(older) > 1 else ''} and the default "
                 "engine's used different versions, so there only the modes without it are "
                 "compared.")
    verdict = ("Every mode's difference is within the noise." if not moved else
               "Beyond the noise: " + ", ".join(moved) + ".")
    return (head + "\n\n" + "\n".join(lines) + "\n\n" + verdict + "\n\n" + _eval_source(s)
            + "\n")


def _uses_adapter(mode: str) -> bool:
    from assistant.answering.routing import Mode
    from assistant.evaluation.run import adapter_for

    return adapter_for(Mode(mode), "x") is not None


def _before(date: str, trained: str | None) -> bool:
    """Whether a run of ``date`` predates the adapter trained at ``trained`` (ISO times)."""
    from datetime import datetime

    return trained is not None and datetime.fromisoformat(date) < datetime.fromisoformat(
        trained)


def _adapter_card(name: str | None) -> dict[str, Any]:
    """The bundled adapter ``name``'s card ({} when there is none)."""
    card = ROOT / "adapters" / (name or "") / "card.json"
    return json.loads(card.read_text()) if name and card.is_file() else {}


def _adapter_trained(name: str | None) -> str | None:
    """When the bundled adapter ``name`` was trained (its card's created_at), or None."""
    return _adapter_card(name).get("created_at")


# The demo adapter in adapter mode on each engine, by the weights it was trained on: QLoRA on
# NF4 before adapters trained on the weights that serve them (kept in research/results/), and
# the bundled adapter (its card says on what).
NF4_TRAINED = ROOT / "research" / "results" / "nf4_trained_adapter"
ENGINES = ("llamacpp", "local NF4", "local fp32")


def _precision_runs() -> list[tuple[str, str | None, dict[str, Path]]]:
    """(row label, the adapter's training time or None, {engine: summary.json})."""
    card = _adapter_card(_summary_adapter())
    return [
        ("NF4 (QLoRA; the earlier demo adapter)", None,
         dict(zip(ENGINES, (NF4_TRAINED / "eval-llamacpp" / "summary.json",
                            NF4_TRAINED / "eval-local-same-code" / "summary.json",
                            NF4_TRAINED / "eval-local-fp32" / "summary.json")))),
        (f"{card.get('quant', '?')} (the bundled demo adapter)", card.get("created_at"),
         dict(zip(ENGINES, (EVAL_SUMMARY, EVAL_LOCAL_SAME_CODE, EVAL_LOCAL_FP32)))),
    ]


def _summary_adapter() -> str | None:
    s = _summary()
    return s.get("adapter") if s else None


def _adapter_precision(where: Path) -> str | None:
    """Adapter mode's fact recall on the hand-written held-out questions, by the weights the
    demo adapter was trained on (rows) and the engine that serves it (columns): an adapter
    learns the rounding of its training weights, so it recalls most where it is served on
    them. llama.cpp computes with the GGUF's Q4_1 weights; the local engine's fp32 base is
    those values dequantised. A run older than the bundled adapter answered with an earlier
    one: shown as not run."""
    lines = ["| adapter trained on | " + " | ".join(ENGINES) + " |",
             "|---|" + "---:|" * len(ENGINES)]
    folders: list[str] = []
    for label, trained, runs in _precision_runs():
        cells = []
        for engine in ENGINES:
            path = runs[engine]
            run = json.loads(path.read_text()) if path.is_file() else None
            if run is None or _before(run["date"], trained):
                cells.append("-")
                continue
            m = run["per_mode"].get("adapter", {})
            cells.append("-" if m.get("recall") is None else f"{m['recall']:.2f}")
            folders.append(f"`{path.parent.relative_to(ROOT)}/`")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if not folders:
        return None
    return ("Adapter mode's fact recall on the headline questions (in scope), the demo adapter "
            "trained on each precision and served by each engine; `-`: not run. From "
            + ", ".join(folders) + " (each summary.json with its date and settings; the "
            "commands are above and in research/README.md); rendered by "
            "`python -m bench.readme`.\n\n" + "\n".join(lines) + "\n")


def _recall_rows(results: Path) -> dict[tuple[str, str], float]:
    """(mode, question) -> fact recall, of an evaluation's in-scope rows."""
    import csv

    with results.open(newline="", encoding="utf-8") as f:
        return {(r["mode"], r["question"]): float(r["recall"]) for r in csv.DictReader(f)
                if r["recall"] not in ("", "None") and r["out_of_scope"] != "True"}


TARGETS = "prompt mode >= 0.70 fact recall; adapter >= 0.60 with <= 30% of prompt mode's " \
    "prompt tokens; layered >= the better of the two"


def _own(m: dict[str, Any]) -> float:
    """Fact recall of the model's own words (the shown answers' where none was checked)."""
    own = m.get("generated_recall")
    return float(m["recall"] if own is None else own)


def _recall_target(m: dict[str, Any], floor: float, own_floor: float | None = None,
                   against: str = "") -> tuple[str, str]:
    """(measured, met) of a mode's fact recall >= ``floor``. A mode whose answers the
    answer check may replace by quotes is judged twice, as shown and in the model's own
    words (against ``own_floor``, default ``floor``), and meets the target only when both
    do."""
    shown, quoted = m["recall"], m.get("quoted_rate")
    measured = f"{shown:.2f}{against}"
    if quoted is None:
        return measured, "yes" if shown >= floor else "**no**"
    own, own_floor = _own(m), floor if own_floor is None else own_floor
    measured += (f"; own words {own:.2f}" + (f" against {own_floor:.2f}" if against else "")
                 + f", {quoted:.0%} of answers quoted")
    verdicts = {"shown": shown >= floor, "own words": own >= own_floor}
    if all(verdicts.values()):
        return measured, "yes"
    return measured, "; ".join(f"{k}: {'yes' if ok else '**no**'}" for k, ok in verdicts.items())


def _eval_targets(where: Path) -> str | None:
    """The project's accuracy targets, read off the evaluation summary."""
    s = _summary()
    if s is None:
        return None
    m = {mode: s["per_mode"][mode] for mode in ("prompt", "adapter", "layered")
         if mode in s["per_mode"] and s["per_mode"][mode]["recall"] is not None}
    if len(m) < 3:
        return None
    share = m["adapter"]["mean_prompt_tokens"] / m["prompt"]["mean_prompt_tokens"]
    best = max(m["prompt"]["recall"], m["adapter"]["recall"])
    best_own = max(_own(m["prompt"]), _own(m["adapter"]))
    rows = [("prompt: fact recall >= 0.70", *_recall_target(m["prompt"], 0.70)),
            ("adapter: fact recall >= 0.60", *_recall_target(m["adapter"], 0.60)),
            ("adapter: prompt tokens <= 30% of prompt mode's",
             (f"{share:.0%} ({m['adapter']['mean_prompt_tokens']:.0f} against "
              f"{m['prompt']['mean_prompt_tokens']:.0f})"), "yes" if share <= 0.30 else "**no**"),
            ("layered: fact recall >= the better of prompt and adapter",
             *_recall_target(m["layered"], best, best_own, f" against {best:.2f}"))]
    table = ["| target | measured | met |", "|---|---|---|"] + [
        f"| {target} | {value} | {met} |" for target, value, met in rows
    ]
    return "\n".join(table) + "\n\n" + _eval_source(s) + "\n"


CONVERSATIONS = RESULTS / "conversations-eval" / "conversations.json"
RESEARCH = ROOT / "research"
SYNTH = RESEARCH / "results" / "synth"
# every full verdict from synthesized pairs, newest first, with what wrote its training file;
# the newest is the table (synth-verdict), the others one sentence each (synth-history)
SYNTH_VERDICTS = [
    (SYNTH / "short" / "verdict.json",
     "the fixed rules, training answers cut to the fact's clause (commit ed86ad9)"),
    (SYNTH / "model" / "verdict.json",
     "the first rules plus the bundled model's rewordings, `--model-rewordings 4`"),
    (SYNTH / "verdict.json", "the first rules"),
]
SYNTH_ABLATION = SYNTH / "ablation.json"  # the same facts from either file
# the verdict with the learned question writer, one per demo domain (research.writer_verdict)
WRITER = RESEARCH / "results" / "writer"
WRITER_SECTION = "#from-documents-to-a-verdict-the-learned-question-writer"
HISTORY = ROOT / "docs" / "evaluation.md"  # where synth-history is rendered


def _conversations_headline(where: Path) -> str | None:
    """The first lines and the recall table of the conversation evaluation."""
    if not CONVERSATIONS.is_file():
        return None
    from assistant.evaluation.conversations import CHECKED_NOTE, markdown

    s = json.loads(CONVERSATIONS.read_text())
    lines = markdown(s).splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")),
               len(lines))
    command = (f"assistant eval --conversations {s['conversations_file']} --modes "
               f"{','.join(s['modes'])} --out {CONVERSATIONS.parent.relative_to(ROOT)}")
    return "\n".join(lines[start:end]) + (
        f"\n\n{CHECKED_NOTE} {s['n_conversations']} conversations, {s['n_follow_ups']} "
        "follow-ups, "
        f"{s['base_model']} {s['quant']}, greedy: `{command}`, rendered by "
        "`python -m bench.readme`.\n")


def _newest_verdict() -> tuple[Path, str, dict[str, Any]] | None:
    """(file, what wrote its training pairs, verdict) of the newest verdict committed."""
    for path, what in SYNTH_VERDICTS:
        if path.is_file():
            return path, what, json.loads(path.read_text())
    return None


def _writer_verdicts() -> list[tuple[Path, dict[str, Any]]]:
    """(file, verdict) per domain with the learned writer, the demo domain first."""
    files = sorted(WRITER.glob("*/verdict.json"), key=lambda p: p.parent.name != "harrowgate-water")
    return [(p, json.loads(p.read_text())) for p in files]


def _writer_verdict(where: Path) -> str | None:
    """Every domain's verdict with the learned writer: table, targets, and the command."""
    verdicts = _writer_verdicts()
    if not verdicts:
        return None
    readme = os.path.relpath(WRITER / "README.md", where)
    parts = [f"{v['text']}\n\n`{p.relative_to(ROOT)}`: `{v['command']}`"
             for p, v in verdicts]
    return "\n\n".join(parts) + (f"\n\nHow each input was made: [{WRITER.relative_to(ROOT)}"
                                  f"/README.md]({readme}); rendered by "
                                  "`python -m bench.readme`.\n")


def _writer_headline(where: Path, path: Path, v: dict[str, Any]) -> str:
    """The README's short table and one sentence, from the demo domain's writer verdict."""
    table = [ln for ln in v["text"].splitlines() if ln.startswith("|")]
    c, yes = v["closed_book"], {True: "yes", False: "**no**"}
    a = v.get("agreement", {})
    doc = os.path.relpath(HISTORY, where) + WRITER_SECTION
    sentence = (f"With the learned question writer (trained on another domain's questions), "
                f"the closed-book adapter from documents only reached {c['share']:.0%} of the "
                f"hand-written pairs' adapter's recall on people's questions (target 70%: "
                f"{yes[c['met']]}"
                + ("; both on the local engine, in an earlier run" if v.get("earlier_command")
                   else "") + "); "
                + (f"same best mode from documents: {yes[a['same_best']]}, every mode within "
                   f"0.10: {yes[a['within_tolerance']]}" + _beyond(a) if a else
                   "the verdict on synth's own held-out questions: not measured yet")
                + (f"; layered mode with the reading adapter trained from documents: "
                   f"{v['reading']['layered']['recall']:.2f} against prompt mode's "
                   f"{v['reading']['prompt']['recall']:.2f}, "
                   f"{v['reading']['layered']['own_words_share']:.0%} of answers in the model's "
                   f"own words against {v['reading']['prompt']['own_words_share']:.0%}"
                   if v.get("reading") else "")
                + f" (`{path.relative_to(ROOT)}`; both "
                f"domains and the reading adapter: [{HISTORY.name}]({doc})).")
    return "\n".join(table) + "\n\n" + sentence + "\n"


def _beyond(a: dict[str, Any]) -> str:
    """The modes whose recall from documents is more than the tolerance off, with both."""
    off = [f"{m} {a['documents'][m]:.2f} against {a['handwritten'][m]:.2f}"
           for m, gap in a["gap"].items() if abs(gap) > a["tolerance"]]
    return f" ({'; '.join(off)})" if off else ""


def _documents_verdict(where: Path) -> str | None:
    """The README's verdict from documents alone: the learned writer's on the demo domain
    when it exists, else the newest rule-made one."""
    writers = _writer_verdicts()
    return _writer_headline(where, *writers[0]) if writers else _synth_verdict(where)


def _synth_verdict(where: Path) -> str | None:
    """The newest verdict from rule-made questions beside the hand-written one: its table
    and one sentence (what the earlier ones measured: ``synth-history``)."""
    newest = _newest_verdict()
    if newest is None:
        return None
    path, _, v = newest
    table = [ln for ln in v["text"].splitlines() if ln.startswith("|")]
    yes = {True: "yes", False: "**no**"}
    b = v.get("baseline")
    reached = "" if b is None else (
        f"the adapter trained only on synthesized pairs reached {b['share']:.0%} of the "
        f"hand-written pairs' adapter's recall on the hand-written questions "
        f"({b['adapter_recall']:.2f} against {b['baseline_recall']:.2f}; target "
        f"{b['target_share']:.0%}); ")
    history = os.path.relpath(HISTORY, where) + \
        "#from-documents-to-a-verdict-synthesized-pairs-and-questions"
    sentence = (f"{reached}same order of the modes: {yes[v['same_order']]}, every mode within "
                f"{v['tolerance']:.2f}: {yes[v['within_tolerance']]} (`{path.relative_to(ROOT)}`,"
                f" rendered by `python -m bench.readme`; what was tried: [{HISTORY.name}]"
                f"({history})).")
    return "\n".join(table) + "\n\n" + sentence[0].upper() + sentence[1:] + "\n"


def _synth_history(where: Path) -> str | None:
    """What the verdicts from synthesized pairs measured besides the table: the newest one's
    training time, copying and wording, each earlier one in a sentence, and the same-facts
    runs; one paragraph."""
    newest = _newest_verdict()
    if newest is None:
        return None
    path, what, v = newest
    notes = [f"Training pairs of the verdict above (`{v['runs']['adapter']}`): {what}"
             + ("" if v.get("recipes", {}).get("same", True) else
                ", trained with a different recipe from the hand-written pairs' adapter") + "."]
    minutes = v.get("recipes", {}).get("train_minutes", {})
    if minutes.get("synthesized"):
        notes.append(f"Its training took {minutes['synthesized']:.0f} minutes (the "
                     f"hand-written pairs' adapter: {minutes['handwritten']:.0f}; target "
                     "under 30).")
    if v.get("copying"):
        from research.synth_verdict import copying_text

        notes.append(copying_text(v["copying"]))
    if v.get("wording"):
        from research.synth_verdict import wording_text

        notes.append(wording_text(v["wording"]))
    notes += [_earlier_verdict(json.loads(p.read_text()), p, w)
              for p, w in SYNTH_VERDICTS if p != path and p.is_file()]
    if SYNTH_ABLATION.is_file():
        from research.training_recipes import split_text

        split = split_text(json.loads(SYNTH_ABLATION.read_text())).strip()
        notes += [f"{split[:-1]} (50 facts, `{SYNTH_ABLATION.relative_to(ROOT)}`)."] if split \
            else []
    readme = os.path.relpath(RESEARCH / "README.md", where)
    notes.append(f"From `{path.relative_to(ROOT)}` (`python -m research.synth_verdict`, "
                 "rendered by `python -m bench.readme`; every command and where its inputs "
                 f"are kept: [research/README.md]({readme})).")
    return " ".join(notes) + "\n"


def _earlier_verdict(v: dict[str, Any], path: Path, what: str) -> str:
    """One sentence: the same measures for an earlier synthesized training file."""
    hand, synth = v["handwritten_recall"], v["synthesized_recall"]
    text = (f"Trained on {what} (`{v['runs']['adapter']}`, `{path.relative_to(ROOT)}`): "
            f"adapter recall {hand['adapter']:.2f} on the hand-written questions and "
            f"{synth['adapter']:.2f} on the synthesized ones")
    if "baseline" in v:
        text += f" ({v['baseline']['share']:.0%} of the hand-written pairs' adapter's)"
    if v.get("wording"):
        w = v["wording"]
        text += (f"; {w['phrasings_synthesized']} phrasings per fact, nearest-phrasing "
                 f"overlap {w['overlap_synthesized']:.2f}")
    return text + "."


def _layered_agreement(where: Path) -> str | None:
    """Layered mode's answer check with and without agreement with the ranking, replayed on
    evaluations' answers (research.layered_agreement), in the order of the files' names."""
    from research.layered_agreement import RESULTS as replays
    from research.layered_agreement import markdown

    runs = [json.loads(p.read_text()) for p in sorted(replays.glob("*.json"))]
    return markdown(runs) if runs else None


def _quote_margin(where: Path) -> str | None:
    """The answer check quoting when the ranking is unsure, replayed on evaluations' answers
    per margin (research.quote_margin), in the order of the files' names."""
    from research.quote_margin import RESULTS as replays
    from research.quote_margin import markdown

    files = [json.loads(p.read_text()) for p in sorted(replays.glob("*.json"))]
    return markdown(files) if files else None


def _reading_contexts(where: Path) -> str | None:
    """Reading adapters trained on layered mode's own contexts and on spread ones, per domain
    (research.reading_contexts), in the order of the files' names."""
    from research.reading_contexts import RESULTS as runs
    from research.reading_contexts import markdown

    files = [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))]
    return markdown(files) if files else None


def _settings(where: Path) -> str:
    """The settings reference, generated from the Settings class itself."""
    from assistant.settings import Settings

    rows = ["| variable | default | what it is for |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(none)" if default is None else str(default).replace("|", "\\|")
        why = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `ASSISTANT_{name.upper()}` | `{shown}` | {why} |")
    return "\n".join(rows) + "\n"


BLOCKS: dict[str, Renderer] = {
    **{f"bench:{p.stem.removeprefix('bench_')}": _bench(p.stem.removeprefix("bench_"))
       for p in sorted((ROOT / "bench").glob("bench_*.py"))},
    "training": _training,
    "eval": _eval,
    "eval-headline": _eval_headline,
    "eval-targets": _eval_targets,
    "eval-engines": _eval_engines,
    "adapter-precision": _adapter_precision,
    "conversations-headline": _conversations_headline,
    "synth-verdict": _synth_verdict,
    "writer-verdict": _writer_verdict,
    "documents-verdict": _documents_verdict,
    "synth-history": _synth_history,
    "synth-wordings": _synth_wordings,
    "layered-agreement": _layered_agreement,
    "quote-margin": _quote_margin,
    "reading-contexts": _reading_contexts,
    "settings": _settings,
}


def documents(root: Path = ROOT) -> list[Path]:
    """The files that hold generated blocks: the README and every page of docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def render(text: str, where: Path) -> tuple[str, list[str]]:
    """``text`` with every known block rendered afresh, and the names of those rewritten."""
    done = []
    for name in dict.fromkeys(_START.findall(text)):
        renderer = BLOCKS.get(name)
        body = renderer(where) if renderer else None
        new = None if body is None else replace_block(text, name, body)
        if new is not None and new != text:
            text = new
            done.append(name)
    return text, done


def refresh(files: list[Path] | None = None, write: bool = True) -> dict[str, list[str]]:
    """Render every block of ``files`` (default: README.md and docs/*.md).

    Returns {file: block names} of the files whose text changed (written unless ``write`` is
    False, which makes this a check that the committed text is what the results render to).
    """
    changed = {}
    for path in files or documents():
        text = path.read_text()
        new, names = render(text, path.parent)
        if new != text:
            changed[str(path)] = names
            if write:
                path.write_text(new)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a block differs from what it renders "
                        "to, or a result is older than the code it measures (bench/freshness.py)")
    args = parser.parse_args(argv)
    changed = refresh(write=not args.check)
    for path, names in changed.items():
        print(f"{'out of date' if args.check else 'refreshed'}: {path} ({', '.join(names)})")
    if not args.check:
        return 0
    from bench.freshness import stale

    old = stale()
    for reason in old:
        print(f"stale: {reason}")
    return 1 if changed or old else 0


if __name__ == "__main__":
    sys.exit(main())
