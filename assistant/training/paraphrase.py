"""Training questions reworded by a language model, and the checks each rewording must pass.

Why: measured on the demo domain, an adapter trained on rule-made questions recalls its
facts when asked in the documents' words and seldom when asked the way people ask (the
synth verdict's ``wording`` section); rules reach too few wordings. A model that knows how
people talk can write more, so `assistant synth --model-rewordings N` asks the configured
generator (any backend: a larger model through ``openai`` or ``llamacpp`` where the user
has one) for N rewordings of each training question. A small model's rewordings drift off
the fact, so every one must pass checks before it is kept: a question, no give-away of the
fact, the same kind of ask as its source (who / when / how many ...), not a copy, not an
example from the prompt, and (in ``synth``) it must still retrieve the fact's passage: the
topic check. Sharing a word with the source is not required, since the wordings worth having
are the ones that share none ("set up" for "founded"). Held-out questions stay rule-made,
so they come from another generator than these.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from assistant.text import contains
from assistant.training.rewording import WH_START, overlap

# questions -> for each, the model's raw reply (one rewording per line)
Ask = Callable[[Sequence[str]], list[str]]

INSTRUCTION = ("Rewrite each question in other words, three times, one per line, the way a "
               "customer would ask it. Keep its meaning; do not answer it.")
EXAMPLES = [  # domain-neutral, so no domain fact leaks in through the prompt
    ("When did the library first open its doors?",
     ["What year was the library opened?", "How long ago did the library start operating?",
      "Since when has the library been around?"]),
    ("Who chairs the parish council?",
     ["Which person is the head of the parish council?", "Who leads the council of the parish?",
      "Name the chairperson of the parish council."]),
    ("How much does a replacement bus pass cost?",
     ["What is the price of a new bus pass if I lose mine?",
      "What do I pay to replace my bus pass?",
      "Is there a fee for a replacement bus pass, and how much?"]),
]
MIN_WORDS, MAX_WORDS = 3, 25


def messages_for(question: str) -> list[dict[str, str]]:
    """The request as chat turns: the instruction, worked examples, then the question. Chat
    models read the turns as a few-shot conversation; a base model's plain template turns them
    into "Question: ... Answer: ..." lines it continues."""
    turns = [{"role": "system", "content": INSTRUCTION}]
    for source, rewordings in EXAMPLES:
        turns += [{"role": "user", "content": source},
                  {"role": "assistant", "content": "\n".join(rewordings)}]
    return turns + [{"role": "user", "content": question}]


_PREFIX = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|(?:rewrite|question|answer)\s*\d*\s*:)\s*", re.I)


def parse(reply: str) -> list[str]:
    """The rewordings in a reply: one per line, bullets, numbers and labels stripped."""
    out: list[str] = []
    for line in reply.splitlines():
        text = line
        while (stripped := _PREFIX.sub("", text)) != text:
            text = stripped
        text = " ".join(text.split())
        if text and text.lower() not in {o.lower() for o in out}:
            out.append(text)
    return out


_ASKS = [  # the first matching pattern names what a question asks for
    (re.compile(r"^(?:who|whom|which person|name the (?:person|chair\w*|manager|head))\b", re.I),
     "person"),
    (re.compile(r"^(?:when|since when|what (?:year|date|day)|which (?:year|date|day)|"
                r"in what year|in which year|on what (?:date|day)|how long ago)\b", re.I), "time"),
    (re.compile(r"^(?:where|at what address|what is the address)\b", re.I), "place"),
    (re.compile(r"^(?:how many|what number of)\b", re.I), "count"),
    (re.compile(r"^(?:how much|what (?:is the )?(?:price|cost|fee|charge)|what do (?:i|we|you) "
                r"pay)\b", re.I), "amount"),
    (re.compile(r"^(?:how long|for how long|how much time)\b", re.I), "duration"),
]


def asks(question: str) -> str:
    """What a question asks for ("person", "time", ...), or "open" (what / which / is ...)."""
    for pattern, kind in _ASKS:
        if pattern.match(question.strip()):
            return kind
    return "open"


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def verdict(candidate: str, source: str, must_contain: Sequence[str],
            known: Sequence[str]) -> str:
    """"kept", or the first check a model's rewording of ``source`` fails. ``known``: the
    fact's phrasings so far (a copy of one adds nothing)."""
    words = candidate.split()
    if not (candidate.endswith("?") or WH_START.match(candidate)):
        return "not a question"
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return f"not {MIN_WORDS} to {MAX_WORDS} words long"
    if any(contains(candidate, m) for m in must_contain):
        return "gives the fact away"
    mine, theirs = asks(candidate), asks(source)
    if "open" not in (mine, theirs) and mine != theirs:
        return f"asks for {_a(mine)}, not {_a(theirs)}"
    if any(overlap(candidate, example) >= 0.5 for _, shots in EXAMPLES for example in shots):
        return "repeats an example from the prompt"
    norm = " ".join(candidate.lower().rstrip("?").split())
    if any(norm == " ".join(k.lower().rstrip("?").split()) for k in known):
        return "copies a phrasing the fact has"
    return "kept"
