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

Spread contexts (``--spread``, off by default) test one guess about why layered mode with
a reading adapter recalls less than prompt mode on people's questions: where prompt mode
was right and it was wrong, it took what it stated from the best-ranked sentence, which
lacked the fact (docs/evaluation.md, "When the ranking is unsure"), and its pairs mostly
show the fact's passage alone, so they never make it choose. A ``spread`` share of the
pairs are drawn to show the sentences stating the fact beside the best sentences of one or
two other retrieved passages, within the same context budget, the passages in an order
that puts the fact's at any place, where such a context can be made. Measured in
docs/evaluation.md ("Reading pairs beside other passages").
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import TrainingDataError
from assistant.text import contains
from assistant.training.data import Example

if TYPE_CHECKING:
    from assistant.answering.pipeline import Pipeline
    from assistant.answering.prompts import ContextLine

DISTRACTORS_ONLY = 0.2  # share of pairs whose context lacks the fact (RAFT kept ~20%)
SPREAD = 0.0  # share of pairs shown a spread context (two or three passages, fact anywhere)


@dataclass(frozen=True)
class Shown:
    """What layered mode shows a question, and what a spread context is made from."""

    lines: Sequence[Any]  # the context lines layered mode shows (each with ``.text``)
    render: Callable[[Sequence[Any]], str]  # a subset of lines -> the context the model reads
    ranked: Sequence[Any] = ()  # every retrieved sentence in reach, best first (``.passage``)
    # sentences by priority -> those the context budget keeps, in reading order (condense)
    fit: Callable[[Sequence[Any]], list[Any]] | None = None


Contexts = Callable[[str], Shown]  # question -> what layered mode shows it


def spread(shown: Shown, stating: Sequence[ContextLine], rng: random.Random
           ) -> tuple[list[ContextLine] | None, str]:
    """The sentences stating the fact beside the best sentences of one or two other
    passages, the rest of the budget filled by rank, the passages numbered in a random
    order; with "spread". Else None and why: ``no_other_passage`` in reach, ``no_room`` in
    the budget beside the fact, or it would ``drop_fact`` (a stating sentence layered mode
    showed). A ``Shown`` without ``fit`` (no budget to keep) counts as no other passage."""
    facts = sorted(stating, key=lambda ln: _place(shown.ranked, ln))
    own = {ln.passage for ln in facts}
    others: list[ContextLine] = []
    for line in shown.ranked:
        if line.passage not in own and all(line.passage != o.passage for o in others):
            others.append(line)
    if not others or shown.fit is None:
        return None, "no_other_passage"
    firsts = [*facts, *others[:rng.choice((1, 2))]]
    lines = shown.fit(firsts + [ln for ln in shown.ranked if ln not in firsts])
    if any(ln not in lines for ln in facts):
        return None, "drop_fact"
    passages = sorted({ln.passage for ln in lines})
    if len(passages) < len(own) + 1:
        return None, "no_room"
    order = dict(zip(passages, rng.sample(passages, len(passages)), strict=True))
    return [replace(ln, passage=order[ln.passage]) for ln in lines], "spread"


def _place(ranked: Sequence[Any], line: Any) -> int:
    return next((i for i, ln in enumerate(ranked) if ln is line), len(ranked))


def reading_rows(examples: Sequence[Example], contexts: Contexts, seed: int = 0,
                 distractors_only: float = DISTRACTORS_ONLY, progress_bar: bool = False,
                 spread_share: float = SPREAD) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One row per example whose context holds its fact (or, for ``distractors_only`` of
    them, holds only the rest), with its ``context``; ``spread_share`` of them drawn for a
    spread context (``spread``), shown one where it can be made. Also counts of the kinds
    of context made: ``fact_not_retrieved`` the examples left out, and for those drawn but
    kept in layered mode's own context, why (``spread``'s reasons).

    The spread draws come from a random stream of their own, so the same seed picks the
    same distractor-only pairs whatever ``spread_share`` is: a file with spread contexts
    differs from layered mode's own in them alone."""
    from tqdm.auto import tqdm

    rng, spread_rng = random.Random(seed), random.Random(seed + 1)
    rows: list[dict[str, Any]] = []
    counts = {"with_fact": 0, "distractors_only": 0, "fact_not_retrieved": 0, "spread": 0,
              "no_other_passage": 0, "no_room": 0, "drop_fact": 0}
    for example in tqdm(examples, desc="passages for each question", unit="question",
                        disable=not progress_bar):
        shown = contexts(example.question)
        lines = list(shown.lines)
        stating = [ln for ln in lines if example.must_contain
                   and any(contains(ln.text, m) for m in example.must_contain)]
        if not stating and example.must_contain:
            counts["fact_not_retrieved"] += 1
            continue
        if stating and spread_share and spread_rng.random() < spread_share:
            widened, kind = spread(shown, stating, spread_rng)
            counts[kind] += 1
            if widened is not None:
                lines = widened
                stating = [ln for ln in lines
                           if any(contains(ln.text, m) for m in example.must_contain)]
        if stating and rng.random() < distractors_only:
            counts["distractors_only"] += 1
            lines = [ln for ln in lines if ln not in stating]
        else:
            counts["with_fact"] += 1
        row: dict[str, Any] = {"question": example.question, "answer": example.answer,
                               "fact_id": example.fact, "context": shown.render(lines)}
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

    def fit(priority: Sequence[Any]) -> list[Any]:
        return prompts.condense(priority, pipeline.backend.count_tokens,
                                pipeline.profile.max_context_tokens)

    def contexts(question: str) -> Shown:
        _, hits, _ = pipeline.plan(question, "prompt", None, [domain] if domain else None)
        prepared = pipeline.messages(question, layered, hits)
        return Shown(prepared.lines, prompts.format_context, prepared.ranked, fit)

    return contexts


def write_reading_file(examples: Sequence[Example], contexts: Contexts, out: Path,
                       seed: int = 0, progress_bar: bool = False,
                       spread_share: float = SPREAD) -> dict[str, int]:
    """The reading pairs as a training file (``context`` on every row); returns the counts.
    Refused when no question's passages hold its fact (nothing to learn to read from)."""
    rows, counts = reading_rows(examples, contexts, seed, progress_bar=progress_bar,
                                spread_share=spread_share)
    if examples and not rows:
        raise TrainingDataError(
            f"no reading pairs: the passages of none of the {len(examples)} questions hold "
            "their fact; ingest the documents they come from (`assistant ingest`) or check "
            "the domain")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                   encoding="utf-8")
    return counts
