"""Keeping prompt- and layered-mode answers to what the documents say.

Prompt mode promises answers from the user's documents only. A 135M model breaks that
promise most of the time: on the demo domain's held-out questions it copied the worked
example's wording with a made-up number ("The most you can be charged ... is 20 years")
or answered with none of the context's specifics. So every prompt-mode answer is checked
against the context it was shown: the *specifics* it states (numbers, amounts, dates and
names, which is what a factoid answer is made of) must appear in that context or in the
question, and it must state at least one specific from the context. An answer that fails
is replaced by the best-ranked context sentences, quoted with their passage numbers; the
model's own text is kept in the ledger (``generated``), so nothing is hidden.

In prompt mode the specifics it takes from the context must also be in the best-ranked
sentence (``agree``): reader and ranker must agree. The 135M reader takes the wrong number
from a right context more often than the ranking puts the wrong sentence first. On a dev
set of one training question per fact (`python -m research.dev_questions`; prompt mode never
learns from them) the own answers the check kept scored well below the quote they would
have been replaced by, and requiring agreement with the best sentence raised prompt-mode
fact recall more than agreement with the best 2 or 3 (`assistant eval --modes prompt` on
that set; commands in docs/evaluation.md), so 1 it is (setting ``agree_sentences``).

Layered mode is checked the same way (without the worked-example test: it shows none).
Its adapter may know a fact the passages lack, but on the demo domain's held-out
questions the layered answers the check failed scored below the quote that replaced
them, and well below the answers it passed (replayed on the committed adapter's eval
answers): the documents are the better judge. It is asked to agree with the best sentence
too: an adapter trained to read its passages (``assistant train --reading``) answered in
its own words far more often than prompt mode, but about half of those answers restated
another passage sentence than the one asked about ("Who chairs the board?" -> "The
vice-chair is ..."), which the other tests let through. Replayed on layered answers
(``python -m research.layered_agreement``; results/layered_agreement/ and
docs/evaluation.md), agreement with the best sentence raised the reading adapter's recall
on synth's held-out questions (its dev set) and on the hand-written ones, and cost the
hand-written adapter nothing.

The same text tests serve the evaluation, so the check and the score agree on what
"the fact is in the answer" means.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from assistant.text import contains, declines, normalise, specifics

if TYPE_CHECKING:
    from assistant.answering.prompts import ContextLine

QUOTE_LEAD = "The documents say:"
_WORDS = re.compile(r"[a-z]{4,}")  # content-ish words; "the", "for", "one" are too common


@dataclass
class Check:
    """What an answer states against what its context says."""

    unsupported: list[str] = field(default_factory=list)  # in neither context nor question
    from_context: list[str] = field(default_factory=list)  # in the context, not the question
    borrowed: list[str] = field(default_factory=list)  # words copied from the worked example
    disagrees: list[str] = field(default_factory=list)  # from the context, not its best sentences
    declined: bool = False

    @property
    def grounded(self) -> bool:
        """A decline, or at least one specific from the context and nothing made up, copied
        or at odds with the best-ranked sentences."""
        return self.declined or (not self.unsupported and not self.borrowed
                                 and not self.disagrees and bool(self.from_context))

    def reason(self) -> str:
        if self.unsupported:
            return "not in the documents: " + ", ".join(dict.fromkeys(self.unsupported))
        if self.borrowed:
            return "copies the worked example: " + ", ".join(self.borrowed)
        if self.disagrees:
            return "not in the best-ranked sentence: " + ", ".join(dict.fromkeys(self.disagrees))
        return "states nothing specific from the documents"


def borrowed_words(answer: str, example: str, context: str, question: str) -> list[str]:
    """Words of the worked example's answer that ``answer`` repeats although neither the
    context nor the question has them: the model copied the demonstration, not the facts."""
    seen = set(_WORDS.findall(normalise(context + " " + question)))
    mine = set(_WORDS.findall(normalise(answer)))
    return [w for w in dict.fromkeys(_WORDS.findall(normalise(example)))
            if w in mine and w not in seen]


def check(answer: str, context: str, question: str, example: str = "",
          agree: str | None = None) -> Check:
    """Check ``answer`` against the ``context`` it was given (see the module docstring);
    ``example`` is the worked example's answer the prompt showed, if any; ``agree``, when
    given, the best-ranked sentences, which must hold every specific taken from the context."""
    if declines(answer):
        return Check(declined=True)
    result = Check(borrowed=borrowed_words(answer, example, context, question) if example else [])
    for item in specifics(answer):
        if contains(context, item):
            if not contains(question, item):
                result.from_context.append(item)
                if agree is not None and not contains(agree, item):
                    result.disagrees.append(item)
        elif not contains(question, item):
            result.unsupported.append(item)
    return result


def best_lines(ranked: Sequence[ContextLine], count: int) -> list[ContextLine]:
    """The first ``count`` sentences of ``ranked`` (best first), in reading order
    (passage, then position).

    Taken from the whole ranking, not only from what fitted the model's context budget: a
    long answer sentence may not fit beside its heading there, and the quote would then miss
    it (`python -m bench.run context` measures the quote taken this way).
    """
    return sorted(ranked[:count], key=lambda line: (line.passage, line.position))


def best_text(ranked: Sequence[ContextLine], count: int) -> str:
    """The first ``count`` sentences of ``ranked``: what ``check`` takes as ``agree``.
    Without their sections: an answer that only repeats a heading's names ("Leak Policy")
    does not agree with the sentence under it."""
    return " ".join(line.text for line in ranked[:count])


def quote(ranked: Sequence[ContextLine], count: int) -> str:
    """The ``best_lines`` of ``ranked``, quoted with their passage numbers."""
    return QUOTE_LEAD + " " + " ".join(
        f"\u201c{line.text}\u201d [{line.passage}]" for line in best_lines(ranked, count))
