"""Saved conversations: one visitor's chats, in the ledger's database.

Every call names the owner (the UI passes the login name, else the browser session; the
CLI passes "cli"), and another owner's conversation behaves exactly as a missing one, so
no caller can read, rename or delete a chat by guessing its id. With the ledger's
``store_text`` off no word is kept: titles and message texts are stored empty, and only
ids, roles, counts, times and the answers' ledger ids remain (``stores_text`` tells the UI
to say so). A "turn" is one message, as in the pipeline's ``history_turns``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from assistant.errors import StrataError
from assistant.ledger.db import next_seq, utc_now
from assistant.ledger.schema import conversations, messages

if TYPE_CHECKING:
    from assistant.ledger.store import Ledger

ROLES = ("user", "assistant")
TITLE_CHARS = 80  # a title made from the first question: enough to recognise it in a list
MAX_MESSAGE_CHARS = 100_000  # a pasted document fits; a runaway client does not
NOT_FOUND = "no such conversation"


@dataclass
class ConversationInfo:
    """One line of a visitor's conversation list."""

    id: str
    title: str
    created: str
    updated: str
    turns: int  # messages, user and assistant


@dataclass
class Conversation:
    """A conversation with its messages, oldest first: {"role", "content", "answer_id"}."""

    id: str
    title: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    created: str = ""
    updated: str = ""

    def history(self) -> list[dict[str, str]]:
        """The messages as the pipeline's ``history`` ({"role", "content"}), empty texts left
        out (a conversation saved with text storage off has none)."""
        return [{"role": m["role"], "content": m["content"]}
                for m in self.messages if m["content"]]


class Conversations:
    """Per-owner conversations stored through ``ledger``'s connection and lock."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @property
    def stores_text(self) -> bool:
        """False when titles and messages are stored empty (``ledger_store_text`` off)."""
        return self.ledger.store_text

    def _text(self, text: str) -> str:
        return text if self.stores_text else ""

    # --- writing -------------------------------------------------------------------
    def create(self, owner: str, title: str = "") -> str:
        """A new, empty conversation of ``owner``; returns its id."""
        owner = _check_owner(owner)
        conversation_id, now = uuid.uuid4().hex, utc_now()
        with self.ledger.writing() as db:
            db.execute(insert(conversations).values(
                id=conversation_id, owner=owner, title=self._text(_clean_title(title)),
                created_at=now, updated_at=now, seq=_next_seq(db)))
        return conversation_id

    def append(self, owner: str, id: str, role: str, content: str,
               answer_id: str | None = None) -> int:
        """Add a message at the end; returns its position (0 for the first).

        The first user message of an untitled conversation becomes its title."""
        if role not in ROLES:
            raise StrataError(f"a message's role is user or assistant, not {role!r}")
        if not isinstance(content, str) or len(content) > MAX_MESSAGE_CHARS:
            raise StrataError(f"a message is text of at most {MAX_MESSAGE_CHARS} characters")
        now = utc_now()
        with self.ledger.writing() as db:
            row = _owned(db, owner, id)
            position = int(db.execute(select(func.count()).where(
                messages.c.conversation_id == id)).scalar_one())
            db.execute(insert(messages).values(
                conversation_id=id, position=position, role=role,
                content=self._text(content), answer_id=answer_id, created_at=now))
            title = row.title or ""
            if not title and role == "user":
                title = self._text(_clean_title(content))
            db.execute(update(conversations).where(conversations.c.id == id).values(
                title=title, updated_at=now, seq=_next_seq(db)))
        return position

    def truncate(self, owner: str, id: str, keep: int) -> None:
        """Keep the first ``keep`` messages and drop the rest (retry, edit the last
        question)."""
        if keep < 0:
            raise StrataError("cannot keep a negative number of messages")
        with self.ledger.writing() as db:
            _owned(db, owner, id)
            db.execute(delete(messages).where(messages.c.conversation_id == id,
                                              messages.c.position >= keep))
            db.execute(update(conversations).where(conversations.c.id == id).values(
                updated_at=utc_now(), seq=_next_seq(db)))

    def rename(self, owner: str, id: str, title: str) -> None:
        with self.ledger.writing() as db:
            _owned(db, owner, id)
            db.execute(update(conversations).where(conversations.c.id == id).values(
                title=self._text(_clean_title(title))))

    def delete(self, owner: str, id: str) -> None:
        """Remove the conversation and its messages (the answers stay in the ledger)."""
        with self.ledger.writing() as db:
            _owned(db, owner, id)
            db.execute(delete(messages).where(messages.c.conversation_id == id))
            db.execute(delete(conversations).where(conversations.c.id == id))

    # --- reading -------------------------------------------------------------------
    def list(self, owner: str) -> list[ConversationInfo]:
        """``owner``'s conversations, the most recently changed first."""
        c = conversations
        turns = select(func.count()).where(messages.c.conversation_id == c.c.id)
        rows = self.ledger.query(
            select(c.c.id, c.c.title, c.c.created_at, c.c.updated_at,
                   turns.scalar_subquery().label("turns"))
            .where(c.c.owner == owner).order_by(c.c.seq.desc()))
        return [ConversationInfo(r["id"], r["title"] or "", r["created_at"], r["updated_at"],
                                 r["turns"]) for r in rows]

    def get(self, owner: str, id: str) -> Conversation:
        rows = self.ledger.query(select(conversations).where(
            conversations.c.id == id, conversations.c.owner == owner))
        if not rows:
            raise StrataError(NOT_FOUND)
        found = self.ledger.query(
            select(messages.c.role, messages.c.content, messages.c.answer_id)
            .where(messages.c.conversation_id == id).order_by(messages.c.position))
        return Conversation(id, rows[0]["title"] or "",
                            [{**m, "content": m["content"] or ""} for m in found],
                            rows[0]["created_at"], rows[0]["updated_at"])

    def latest(self, owner: str) -> str | None:
        """The id of ``owner``'s most recently changed conversation, or None."""
        rows = self.ledger.query(select(conversations.c.id).where(
            conversations.c.owner == owner).order_by(conversations.c.seq.desc()).limit(1))
        return rows[0]["id"] if rows else None


def _check_owner(owner: Any) -> str:
    if not isinstance(owner, str) or not owner.strip():
        raise StrataError("a conversation needs an owner")
    return owner


def _clean_title(title: str) -> str:
    title = " ".join(str(title or "").split())
    return title if len(title) <= TITLE_CHARS else title[:TITLE_CHARS - 3].rstrip() + "..."


def _owned(db: Connection, owner: str, id: str) -> Row[Any]:
    """The conversation's row if ``owner`` owns it; any other case reads as not found."""
    row = db.execute(select(conversations).where(
        conversations.c.id == id, conversations.c.owner == owner)).first()
    if row is None:
        raise StrataError(NOT_FOUND)
    return row


def _next_seq(db: Connection) -> int:
    return next_seq(db, conversations)
