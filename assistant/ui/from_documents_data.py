"""What the "Train from documents" sub-tab shows and saves: a sample of the synthesized pairs
as table rows, the table's edits written back into train.jsonl, and the verdict rendered
from the evaluation's summary.

Apart from ``from_documents`` (the handlers and layout) so that the file formats and the
presentation can be read, and tested, without Gradio or threads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import StrataError
from assistant.jsonl import read_objects

if TYPE_CHECKING:
    from matplotlib.figure import Figure

HEADERS = ["line", "question", "answer", "must contain"]
SAMPLE = 24  # rows to review: enough to judge the pairs, few enough to read
SEPARATOR = " | "  # must_contain strings in one cell (the CSV training format's "|")


# --- the review table -------------------------------------------------------------------
def sample_rows(path: Path, size: int = SAMPLE) -> list[list[Any]]:
    """Evenly spaced pairs of train.jsonl, with their line numbers so edits find them."""
    if not path.is_file():
        return []
    rows = read_objects(path)
    step = max(1, len(rows) // size)
    return [[number, row.get("question", ""), row.get("answer", ""),
             SEPARATOR.join(row.get("must_contain") or [])]
            for number, row in rows[::step][:size]]


def apply_edits(path: Path, table: list[list[Any]]) -> tuple[int, int]:
    """Write the table's edits into train.jsonl: (pairs changed, pairs removed).

    A row whose question is cleared removes its pair; rows name their line, so the sample
    may be any part of the file and unknown lines are ignored rather than guessed at.
    """
    rows = dict(read_objects(path))
    changed, removed = 0, 0
    for cells in table:
        line = _line(cells[0] if cells else None)
        if line not in rows or len(cells) < len(HEADERS):
            continue
        question, answer, must = (str(c if c is not None else "").strip() for c in cells[1:4])
        if not question:
            del rows[line]
            removed += 1
            continue
        new = {**rows[line], "question": question, "answer": answer,
               "must_contain": [m.strip() for m in must.split("|") if m.strip()]}
        if new != rows[line]:
            rows[line] = new
            changed += 1
    if changed or removed:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for _, r in sorted(rows.items()))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # never half a file
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return changed, removed


def _line(value: Any) -> int | None:
    try:
        return int(float(value))  # the browser may send 3.0
    except (TypeError, ValueError):
        return None


# --- what the steps report ------------------------------------------------------------------
def shown(path: str | Path, root: Path | None) -> str:
    """A file as the page names it: inside the data folder, never the server's full path."""
    try:
        return f"data/{Path(path).relative_to(root).as_posix()}" if root else Path(path).name
    except ValueError:
        return Path(path).name


def synth_markdown(report: dict[str, Any], root: Path | None = None) -> str:
    """The synth report in a few lines: what was kept, how far held-out questions are."""
    try:
        o = report["held_out_overlap"]
        drops = ", ".join(f"{r} ({n})" for r, n in list(report["dropped_by_reason"].items())[:4])
        lines = [
            f"**{report['train_pairs']} training pairs** and **{report['test_questions']} "
            f"held-out questions** (+ {report['out_of_scope_questions']} out of scope) from "
            f"{report['facts_kept']} of {report['facts_found']} facts found in "
            f"{report['passages']} passages of `{report['domain']}`.",
            f"Held-out questions share on average {o['mean']} of their words with the same "
            f"fact's training phrasings (max {o['max']}); none equals one.",
            f"Dropped: {drops or 'nothing'}.",
            "Review a sample below: edit a cell, or clear a question to remove its pair; edits "
            "are saved into train.jsonl when you train. Full report: "
            f"`{shown(report['files']['report.md'], root)}`.",
        ]
    except (KeyError, TypeError) as exc:
        raise StrataError(f"the synth report lacks {exc}; generate the pairs again") from None
    return "\n\n".join(lines)


def verdict_markdown(summary: dict[str, Any], root: Path | None = None) -> str:
    """The report's table (accuracy, latency, cost per mode), its verdict and break-even."""
    from assistant.evaluation.report import engine_note, markdown_table

    verdict = [v["text"] for k, v in summary["verdict"].items() if k != "text"]
    lines = [
        f"{summary['n_questions']} held-out questions ({summary['n_out_of_scope']} out of "
        f"scope), adapter `{summary['adapter']}`{engine_note(summary)}, "
        f"at most {summary['max_new_tokens']} new tokens, "
        f"{summary['decoding']}.", "",
        markdown_table(summary), "",
        *[f"- {text}" for text in verdict], "",
        f"**Break-even:** {summary['break_even']['text']}", "",
        f"Report: `{shown(summary['files']['report'], root)}`; every answer: "
        f"`{shown(summary['files']['csv'], root)}`.",
    ]
    return "\n".join(lines)


def verdict_plots(summary: dict[str, Any]) -> tuple[Figure, Figure, Figure]:
    """The report's three plots, drawn by the same functions that wrote its PNG files (a
    figure goes to the page inline; the PNGs lie in data_dir, which is never served)."""
    from assistant.evaluation import plots

    per_mode = summary["per_mode"]
    return (plots.accuracy_vs_cost_figure(per_mode), plots.latency_figure(per_mode),
            plots.tokens_figure(per_mode))
