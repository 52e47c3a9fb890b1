"""Conversations: the earlier turns of a chat, the standalone query a follow-up searches
with, and the part of the history the model reads.

A follow-up such as "How many of them can one household claim?" names nothing the router
or the retriever could match. Rewriting it with the 135M model is unreliable (asked to
write questions it mostly echoes its prompt), so the standalone query is built by rule:
a follow-up that refers back (a pronoun or demonstrative, "what about ...", or too short
to stand alone) is searched together with the earlier user turns it continues; a message
that says it changes the topic ("Unrelated: ...") is searched alone, without the history,
so the old topic is not dragged into retrieval or routing. The earlier turns go into the
model's messages, newest first within a token budget (the oldest drop first).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from assistant.errors import StrataError
from assistant.text import has_surrogates

Turn = dict[str, str]  # {"role": "user" | "assistant", "content": text}
ROLES = ("user", "assistant")
MAX_TURNS = 200  # a request carrying more is refused, not silently cut
CONTEXT_TURNS = 2  # earlier user turns a follow-up is searched with
CONTEXT_CHARS = 600  # of each: enough for a question, not for a pasted document

# "Thanks. Unrelated: what is ...": everything up to the marker is dropped.
_TOPIC_CHANGE = re.compile(
    r"^.*?\b(?:unrelated|different (?:question|topic|subject)|new (?:question|topic)|"
    r"change of (?:topic|subject)|another (?:question|topic)|something else|"
    r"off[- ]topic|changing the subject)\b\s*[:,.;!?-]*\s*", re.IGNORECASE)
_REFERS_BACK = re.compile(
    r"\b(?:it|its|it's|they|them|their|theirs|those|these|that|this|he|she|him|her|"
    r"his|hers|such|ones|same|above|former|latter)\b"
    # "one" as a pronoun, standing for a noun of an earlier turn: "How often can I get
    # one?", "the fine for ignoring one"; not "one household", which names its noun
    r"|\bone\b(?=\s*(?:[?.!,;]|$))", re.IGNORECASE)
_CONTINUES = re.compile(
    r"^\s*(?:and|but|or|so|also|what about|how about|what if|and if|then|why|how so)\b",
    re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9£$€][\w'’.-]*")
SHORT = 4  # a message of at most this many words rarely stands alone ("And businesses?")


@dataclass
class Standalone:
    """What a message is searched and routed with, and why."""

    query: str
    kind: str  # "alone" (no history or it stands alone), "follow-up", "topic change"
    question: str  # the message as the model should read it (a topic change's marker cut)

    @property
    def uses_history(self) -> bool:
        return self.kind == "follow-up"


def check_history(history: object) -> list[Turn]:
    """``history`` (whatever a caller sent) as a list of {"role", "content"} turns, or a
    StrataError saying why not."""
    if history is None:
        return []
    if not isinstance(history, (list, tuple)):
        raise StrataError("the history must be a list of {role, content} messages")
    if len(history) > MAX_TURNS:
        raise StrataError(f"the history is too long ({len(history)} > {MAX_TURNS} messages)")
    turns = []
    for number, turn in enumerate(history, start=1):
        if not isinstance(turn, dict):
            raise StrataError(f"history message {number}: expected {{role, content}}")
        role, content = turn.get("role"), turn.get("content")
        if role not in ROLES:
            raise StrataError(f"history message {number}: role must be user or assistant, "
                              f"not {role!r}")
        if not isinstance(content, str) or has_surrogates(content):
            raise StrataError(f"history message {number}: content must be text")
        if content.strip():
            turns.append({"role": role, "content": content.strip()})
    return turns


def changes_topic(message: str) -> str | None:
    """The message after its topic-change marker, or None when it has none."""
    found = _TOPIC_CHANGE.match(message)
    if not found:
        return None
    rest = message[found.end():].strip()
    return rest or None


def refers_back(message: str) -> bool:
    """Whether ``message`` continues an earlier turn rather than standing alone."""
    words = _WORD.findall(message)
    return (len(words) <= SHORT or bool(_REFERS_BACK.search(message))
            or bool(_CONTINUES.match(message)))


def standalone(question: str, history: Sequence[Turn]) -> Standalone:
    """The query ``question`` is searched with, given the earlier turns (see module doc)."""
    rest = changes_topic(question)
    if rest is not None:
        return Standalone(rest, "topic change", rest)
    earlier = [t["content"] for t in history if t["role"] == "user"]
    if not earlier or not refers_back(question):
        return Standalone(question, "alone", question)
    context = _continued(earlier)
    return Standalone(" ".join([*context, question]), "follow-up", question)


def _continued(earlier: list[str]) -> list[str]:
    """The earlier user turns the newest one continues: back to (and including) the last
    one that stood alone, at most CONTEXT_TURNS of them, oldest first."""
    chain: list[str] = []
    for index in range(len(earlier) - 1, -1, -1):
        text = changes_topic(earlier[index]) or earlier[index]
        chain.insert(0, text[:CONTEXT_CHARS])
        if len(chain) >= CONTEXT_TURNS or not refers_back(earlier[index]):
            break
        if changes_topic(earlier[index]) is not None:
            break
    return chain


def trim(history: Sequence[Turn], budget: int, count_tokens: Callable[[str], int]
         ) -> list[Turn]:
    """The newest turns of ``history`` whose contents fit in ``budget`` tokens, in order.

    Whole turns only, the oldest dropped first; a history that starts with an assistant
    turn after trimming loses it too, so the model never reads an answer without its
    question.
    """
    kept: list[Turn] = []
    used = 0
    for turn in reversed(history):
        cost = count_tokens(turn["content"]) + 4  # the chat template's role markers
        if used + cost > budget:
            break
        kept.insert(0, turn)
        used += cost
    while kept and kept[0]["role"] != "user":
        kept.pop(0)
    return kept
