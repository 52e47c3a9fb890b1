"""The files `assistant synth` writes: train.jsonl, test.jsonl, report.json and report.md.

The report says what was kept and what was dropped, each drop with its reason, and how far
the held-out questions are from the training phrasings of the same fact (word overlap), so
a user can judge the synthesized data before training on it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from assistant.training.rewording import RESTATES, restates
from assistant.training.synth import Options, Synthesis, held_out_rows, train_rows, write_jsonl

FILES = ("train.jsonl", "test.jsonl", "report.json", "report.md")


def build_report(synthesis: Synthesis, options: Options, domain: str,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Counts, the overlap of held-out with training questions, kinds, drops by reason."""
    overlaps = [f.test_overlap for f in synthesis.facts if f.test_overlap is not None]
    reasons = Counter(f"{d['what']}: {d['reason']}" for d in synthesis.dropped)
    return {
        "domain": domain,
        "generator": "rules (assistant/training/facts.py, questions.py, rewording.py)",
        "options": {"phrasings": options.phrasings, "eval_share": options.eval_share,
                    "seed": options.seed, "per_sentence": options.per_sentence,
                    "model_rewordings": options.model_rewordings, "writer": options.writer,
                    "samples": options.samples},
        **synthesis.counts,
        "out_of_scope_questions": len(synthesis.out_of_scope),
        "restating_pairs": {
            "measure": f"training pairs whose answer holds >= {RESTATES:.0%} of the question's "
                       "content words (an adapter trained on many learns to restate questions)",
            "count": sum(restates(q, f.training_answer) for f in synthesis.facts for q in f.train),
        },
        "phrasings_per_fact": dict(sorted(Counter(len(f.train) for f in synthesis.facts).items())),
        "kinds": dict(Counter(f.kind for f in synthesis.facts).most_common()),
        "held_out_overlap": {
            "measure": "Jaccard share of content words between a held-out question and the "
                       "most similar training phrasing of the same fact",
            "mean": round(sum(overlaps) / len(overlaps), 3) if overlaps else None,
            "max": max(overlaps) if overlaps else None,
            "equal_to_a_training_phrasing": 0,  # by construction: such a candidate is dropped
        },
        "dropped_by_reason": dict(reasons.most_common()),
        "kept": [{"fact_id": f.fact_id, "source": f.source, "kind": f.kind,
                  "must_contain": f.must_contain, "answer": f.answer, "train": f.train,
                  "test": f.test, "test_overlap": f.test_overlap, "model_made": f.model_made,
                  "validation": f.validation}
                 for f in synthesis.facts],
        "dropped": synthesis.dropped,
        **(extra or {}),
    }


def render(report: dict[str, Any], sample: int = 8) -> str:
    """report.md: the counts, overlap, drops by reason and a sample of the pairs."""
    o = report["held_out_overlap"]
    lines = [
        f"# Synthesized questions for `{report['domain']}`", "",
        f"Generator: {report['generator']}.", "",
        f"- passages read: {report['passages']}",
        f"- facts found: {report['facts_found']}, kept: {report['facts_kept']}",
        f"- training pairs: {report['train_pairs']} (phrasings per fact: "
        f"{report['phrasings_per_fact']})",
        *([f"- of those, written by the model (each passing the checks of "
           f"assistant/training/paraphrase.py): {report['model_pairs']}"]
          if report.get("options", {}).get("model_rewordings") else []),
        *([f"- of those, written by the learned question writer (each passing the checks of "
           f"assistant/training/writer.py): {report['model_pairs']}; the rule-made "
           f"validation questions (early stopping): {report.get('validation_pairs', 0)}"]
          if report.get("options", {}).get("writer") == "learned" else []),
        f"- {report['restating_pairs']['measure']}: {report['restating_pairs']['count']}",
        f"- held-out questions: {report['test_questions']} in scope + "
        f"{report['out_of_scope_questions']} out of scope",
        f"- held-out overlap with the same fact's training phrasings ({o['measure']}): "
        f"mean {o['mean']}, max {o['max']}; equal to a training phrasing: "
        f"{o['equal_to_a_training_phrasing']}",
        f"- kinds of fact: {report['kinds']}", "",
        "## Dropped, by reason", "", "| what: reason | count |", "|---|---:|",
        *[f"| {reason} | {count} |" for reason, count in report["dropped_by_reason"].items()],
        "", "Every drop, with its text, is listed in report.json (`dropped`).", "",
        "## A sample of the kept facts", "",
    ]
    for fact in report["kept"][:: max(1, len(report["kept"]) // sample)][:sample]:
        lines += [f"**{fact['fact_id']}** ({fact['kind']}, must contain "
                  f"{', '.join(fact['must_contain'])}): {fact['answer']}", ""]
        by_model = len(fact["train"]) - fact.get("model_made", 0)
        lines += [f"- train{' (model)' if i >= by_model else ''}: {q}"
                  for i, q in enumerate(fact["train"])]
        if fact["test"]:
            lines.append(f"- held out (overlap {fact['test_overlap']}): {fact['test']}")
        lines.append("")
    if report.get("model_questions"):
        m = report["model_questions"]
        lines += ["## The bundled model as a question writer", "", m["text"], ""]
    return "\n".join(lines)


def write_outputs(synthesis: Synthesis, options: Options, domain: str, out_dir: Path | str,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the four files; returns the report (with the files' paths)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "train.jsonl", train_rows(synthesis))
    write_jsonl(out / "test.jsonl", held_out_rows(synthesis))
    report = build_report(synthesis, options, domain, extra)
    report["files"] = {name: str(out / name) for name in FILES}
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    (out / "report.md").write_text(render(report) + "\n", encoding="utf-8")
    return report
