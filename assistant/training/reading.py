"""Pairs for an adapter that reads: each question with the passages layered mode would show
it (RAFT, Zhang et al. 2024).

Why: a closed-book adapter in layered mode was trained without passages, so it mostly
ignores them; trained with the passages in layered mode's exact prompt, the right one among
distractors, an adapter learns to answer from them. Some pairs get only the distractors
(the sentences stating the fact removed) and keep their answer, so the adapter still learns
the fact itself and does not learn to trust whatever the context says. The answers are the
training file's own, stated from the passage.

A question whose passages, as layered mode retrieves them, lack its fact makes no pair: it
would teach the adapter to answer with a sentence it was not shown, beside others it was.
On harrowgate-water from documents only, 91 of 398 questions were such (their fact's
sentence missed the context budget or the search), and the adapter trained with them
restated a wrong passage sentence in half its own answers (docs/evaluation.md).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import TrainingDataError
from assistant.text import contains
from assistant.training.data import Example

if TYPE_CHECKING:
    from assistant.answering.pipeline import Pipeline

DISTRACTORS_ONLY = 0.2  # share of pairs whose context lacks the fact (RAFT kept ~20%)


# question -> the context lines layered mode shows for it (each with ``.text``), and the
# function that writes a subset of them as the context the model reads
Contexts = Callable[[str], tuple[Sequence[Any], Callable[[Sequence[Any]], str]]]


def reading_rows(examples: Sequence[Example], contexts: Contexts, seed: int = 0,
                 distractors_only: float = DISTRACTORS_ONLY, progress_bar: bool = False
                 ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One row per example whose context holds its fact (or, for ``distractors_only`` of
    them, holds only the rest), with its ``context``; counts of the kinds of context made,
    ``fact_not_retrieved`` being the examples left out."""
    from tqdm.auto import tqdm

    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    counts = {"with_fact": 0, "distractors_only": 0, "fact_not_retrieved": 0}
    for example in tqdm(examples, desc="passages for each question", unit="question",
                        disable=not progress_bar):
        lines, render = contexts(example.question)
        stating = [ln for ln in lines if example.must_contain
                   and any(contains(ln.text, m) for m in example.must_contain)]
        if not stating and example.must_contain:
            counts["fact_not_retrieved"] += 1
            continue
        if stating and rng.random() < distractors_only:
            counts["distractors_only"] += 1
            shown = [ln for ln in lines if ln not in stating]
        else:
            counts["with_fact"] += 1
            shown = list(lines)
        row: dict[str, Any] = {"question": example.question, "answer": example.answer,
                               "fact_id": example.fact, "context": render(shown)}
        if example.must_contain:
            row["must_contain"] = list(example.must_contain)
        if example.validation:
            row["split"] = "validation"
        rows.append(row)
    return rows, counts


def pipeline_contexts(pipeline: Pipeline, domain: str | None = None) -> Contexts:
    """What layered mode shows a question: the app's own retrieval (limited to ``domain``)
    and sentence ranking, condensed to the context budget."""
    from assistant.answering import prompts
    from assistant.answering.modes import Mode
    from assistant.answering.routing import Decision

    layered = Decision(mode=Mode.LAYERED, adapter=None, reason="reading pairs")

    def contexts(question: str) -> tuple[Sequence[Any], Callable[[Sequence[Any]], str]]:
        _, hits, _ = pipeline.plan(question, "prompt", None, [domain] if domain else None)
        return pipeline.messages(question, layered, hits).lines, prompts.format_context

    return contexts


def write_reading_file(examples: Sequence[Example], contexts: Contexts, out: Path,
                       seed: int = 0, progress_bar: bool = False) -> dict[str, int]:
    """The reading pairs as a training file (``context`` on every row); returns the counts.
    Refused when no question's passages hold its fact (nothing to learn to read from)."""
    rows, counts = reading_rows(examples, contexts, seed, progress_bar=progress_bar)
    if examples and not rows:
        raise TrainingDataError(
            f"no reading pairs: the passages of none of the {len(examples)} questions hold "
            "their fact; ingest the documents they come from (`assistant ingest`) or check "
            "the domain")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                   encoding="utf-8")
    return counts
