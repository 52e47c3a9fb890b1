"""Human judgement of answers: like/dislike on one answer, and blind arena battles.

Both point at answers' ledger rows, so a vote can be read beside the answer's mode,
adapter, latency and cost; an id the ledger does not hold is refused rather than stored
as a vote about nothing. One voter has one opinion per answer (and per arena pair): voting
again replaces the earlier vote, so a double click or a change of mind counts once. With
the ledger's ``store_text`` off a feedback comment is dropped (it may quote the answer).

A strategy names what wrote an answer: a mode ("prompt", "base"), or a mode with its
adapter ("adapter:harrowgate-water", "layered:harrowgate-water"); see ``strategy``.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, delete, func, insert, select

from assistant.errors import StrataError
from assistant.ledger.db import next_seq, utc_now
from assistant.ledger.schema import answers, battles, feedback

if TYPE_CHECKING:
    from assistant.ledger.store import Ledger

VALUES = ("like", "dislike")
WINNERS = ("a", "b", "tie", "both_bad")
MAX_COMMENT_CHARS = 2000  # a paragraph of why; longer is a paste, not feedback
_STRATEGY = re.compile(r"[a-z]+(?::[A-Za-z0-9][\w.-]*)?")


def strategy(mode: str, adapter: str | None = None) -> str:
    """The strategy name of an answer written in ``mode`` with ``adapter`` (or none)."""
    return f"{mode}:{adapter}" if adapter else str(mode)


def adapter_of(name: str) -> str | None:
    """The adapter a strategy name uses, or None: ``"layered:law"`` -> ``"law"``."""
    return name.partition(":")[2] or None


class Votes:
    """Feedback and battles stored through ``ledger``'s connection and lock."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def _check_answers(self, *answer_ids: str, sessions: tuple[str, ...] | None = None
                       ) -> None:
        """Refuse ids the ledger lacks, and (given ``sessions``) answers given to another
        session: a voter judges answers they were shown, never anyone's by id. Both read
        "no such answer", so a refusal does not tell whether another user's id exists."""
        for answer_id in answer_ids:
            found = isinstance(answer_id, str) and self.ledger.query(
                select(answers.c.session_id).where(answers.c.id == answer_id))
            if not found or (sessions is not None and found[0]["session_id"] not in sessions):
                raise StrataError(f"no such answer among yours: {answer_id!r}")

    def feedback(self, answer_id: str, owner: str, value: str,
                 comment: str | None = None, sessions: tuple[str, ...] | None = None) -> str:
        """Record ``owner``'s like or dislike of an answer, replacing their earlier one;
        returns the vote's id. With ``sessions`` only an answer of one of them is taken."""
        if value not in VALUES:
            raise StrataError(f"feedback is 'like' or 'dislike', not {value!r}")
        owner = _check_owner(owner)
        comment = (comment or "").strip() or None
        if comment and len(comment) > MAX_COMMENT_CHARS:
            raise StrataError(f"the comment is too long (at most {MAX_COMMENT_CHARS} characters)")
        if not self.ledger.store_text:
            comment = None
        self._check_answers(answer_id, sessions=sessions)
        vote_id = uuid.uuid4().hex
        with self.ledger.writing() as db:
            db.execute(delete(feedback).where(feedback.c.answer_id == answer_id,
                                              feedback.c.owner == owner))
            db.execute(insert(feedback).values(
                id=vote_id, answer_id=answer_id, owner=owner, value=value, comment=comment,
                created_at=utc_now(), seq=next_seq(db, feedback)))
        return vote_id

    def battle(self, owner: str, a_answer_id: str, b_answer_id: str, a_strategy: str,
               b_strategy: str, winner: str, sessions: tuple[str, ...] | None = None) -> str:
        """Record a blind comparison of two answers to one question; returns its id.

        ``winner`` is "a", "b", "tie" or "both_bad". The same voter judging the same pair
        again replaces the earlier verdict. With ``sessions``, both answers must be theirs."""
        if winner not in WINNERS:
            raise StrataError(f"the winner is one of {', '.join(WINNERS)}, not {winner!r}")
        owner = _check_owner(owner)
        for name in (a_strategy, b_strategy):
            if not isinstance(name, str) or not _STRATEGY.fullmatch(name):
                raise StrataError(f"not a strategy name: {name!r} (e.g. 'prompt', "
                                  "'adapter:NAME')")
        if a_strategy == b_strategy:
            raise StrataError("a battle needs two different strategies")
        if a_answer_id == b_answer_id:
            raise StrataError("a battle needs two different answers")
        self._check_answers(a_answer_id, b_answer_id, sessions=sessions)
        battle_id = uuid.uuid4().hex
        with self.ledger.writing() as db:
            db.execute(delete(battles).where(battles.c.owner == owner,
                                             battles.c.a_answer_id == a_answer_id,
                                             battles.c.b_answer_id == b_answer_id))
            db.execute(insert(battles).values(
                id=battle_id, owner=owner, a_answer_id=a_answer_id, b_answer_id=b_answer_id,
                a_strategy=a_strategy, b_strategy=b_strategy, winner=winner,
                created_at=utc_now(), seq=next_seq(db, battles)))
        return battle_id

    # --- reading -------------------------------------------------------------------
    def feedback_for(self, answer_id: str) -> list[dict[str, Any]]:
        """Every voter's feedback on one answer, oldest first: {id, answer_id, owner,
        value, comment, created_at}."""
        columns = [c for c in feedback.c if c.name != "seq"]
        return self.ledger.query(select(*columns).where(feedback.c.answer_id == answer_id)
                                 .order_by(feedback.c.created_at, feedback.c.seq))

    def owner_feedback(self, owner: str, answer_ids: list[str]) -> dict[str, str]:
        """{answer id: "like" | "dislike"} of ``owner``'s own feedback on these answers (a
        reopened chat shows its thumbs again)."""
        owner = _check_owner(owner)
        found: dict[str, str] = {}
        for start in range(0, len(answer_ids), 500):  # SQLite's bound-parameter limit
            chunk = answer_ids[start:start + 500]
            for row in self.ledger.query(
                    select(feedback.c.answer_id, feedback.c.value).where(
                        feedback.c.owner == owner, feedback.c.answer_id.in_(chunk))):
                found[row["answer_id"]] = row["value"]
        return found

    def battles(self) -> list[dict[str, Any]]:
        """Every battle, oldest first: {id, owner, a_answer_id, b_answer_id, a_strategy,
        b_strategy, winner, created_at}."""
        columns = [c for c in battles.c if c.name != "seq"]
        return self.ledger.query(select(*columns).order_by(battles.c.created_at, battles.c.seq))

    def feedback_counts(self) -> list[dict[str, Any]]:
        """Likes, dislikes and comments per strategy of the answers voted on, most voted
        first: {strategy, mode, adapter, likes, dislikes, comments}."""
        a, f = answers.c, feedback.c
        rows = self.ledger.query(
            select(a.chosen_mode.label("mode"), a.adapter.label("adapter"),
                   *(func.coalesce(func.sum(case((f.value == v, 1), else_=0)), 0).label(f"{v}s")
                     for v in VALUES),
                   func.count(f.comment).label("comments"))
            .select_from(feedback.join(answers, a.id == f.answer_id))
            .group_by(a.chosen_mode, a.adapter))
        result = [{"strategy": strategy(r["mode"] or "unknown", r["adapter"]), **r}
                  for r in rows]
        return sorted(result, key=lambda r: (-(r["likes"] + r["dislikes"]), r["strategy"]))


def _check_owner(owner: Any) -> str:
    if not isinstance(owner, str) or not owner.strip():
        raise StrataError("a vote needs its voter (owner)")
    return owner
