"""Saved conversations: one visitor's chats, in the ledger's SQLite file.

Every call names the owner (the UI passes the login name, else the browser session; the
CLI passes "cli"), and another owner's conversation behaves exactly as a missing one, so
no caller can read, rename or delete a chat by guessing its id. With the ledger's
``store_text`` off no word is kept: titles and message texts are stored empty, and only
ids, roles, counts, times and the answers' ledger ids remain (``stores_text`` tells the UI
to say so). A "turn" is one message, as in the pipeline's ``history_turns``.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.errors import StrataError
from assistant.ledger.db import utc_now

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
            db.execute("INSERT INTO conversations (id, owner, title, created_at, updated_at, "
                       "seq) VALUES (?, ?, ?, ?, ?, ?)",
                       (conversation_id, owner, self._text(_clean_title(title)), now, now,
                        _next_seq(db)))
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
            position = db.execute("SELECT count(*) FROM messages WHERE conversation_id = ?",
                                  (id,)).fetchone()[0]
            db.execute("INSERT INTO messages (conversation_id, position, role, content, "
                       "answer_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (id, position, role, self._text(content), answer_id, now))
            title = row["title"] or ""
            if not title and role == "user":
                title = self._text(_clean_title(content))
            db.execute("UPDATE conversations SET title = ?, updated_at = ?, seq = ? "
                       "WHERE id = ?", (title, now, _next_seq(db), id))
        return int(position)

    def truncate(self, owner: str, id: str, keep: int) -> None:
        """Keep the first ``keep`` messages and drop the rest (retry, edit the last
        question)."""
        if keep < 0:
            raise StrataError("cannot keep a negative number of messages")
        with self.ledger.writing() as db:
            _owned(db, owner, id)
            db.execute("DELETE FROM messages WHERE conversation_id = ? AND position >= ?",
                       (id, keep))
            db.execute("UPDATE conversations SET updated_at = ?, seq = ? WHERE id = ?",
                       (utc_now(), _next_seq(db), id))

    def rename(self, owner: str, id: str, title: str) -> None:
        with self.ledger.writing() as db:
            _owned(db, owner, id)
            db.execute("UPDATE conversations SET title = ? WHERE id = ?",
                       (self._text(_clean_title(title)), id))

    def delete(self, owner: str, id: str) -> None:
        """Remove the conversation and its messages (the answers stay in the ledger)."""
        with self.ledger.writing() as db:
            _owned(db, owner, id)
            db.execute("DELETE FROM messages WHERE conversation_id = ?", (id,))
            db.execute("DELETE FROM conversations WHERE id = ?", (id,))

    # --- reading -------------------------------------------------------------------
    def list(self, owner: str) -> list[ConversationInfo]:
        """``owner``'s conversations, the most recently changed first."""
        rows = self.ledger.query(
            "SELECT c.id, c.title, c.created_at, c.updated_at, "
            "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS turns "
            "FROM conversations c WHERE c.owner = ? ORDER BY c.seq DESC", (owner,))
        return [ConversationInfo(r["id"], r["title"] or "", r["created_at"], r["updated_at"],
                                 r["turns"]) for r in rows]

    def get(self, owner: str, id: str) -> Conversation:
        rows = self.ledger.query("SELECT * FROM conversations WHERE id = ? AND owner = ?",
                                 (id, owner))
        if not rows:
            raise StrataError(NOT_FOUND)
        messages = self.ledger.query(
            "SELECT role, content, answer_id FROM messages WHERE conversation_id = ? "
            "ORDER BY position", (id,))
        return Conversation(id, rows[0]["title"] or "",
                            [{**m, "content": m["content"] or ""} for m in messages],
                            rows[0]["created_at"], rows[0]["updated_at"])

    def latest(self, owner: str) -> str | None:
        """The id of ``owner``'s most recently changed conversation, or None."""
        rows = self.ledger.query("SELECT id FROM conversations WHERE owner = ? "
                                 "ORDER BY seq DESC LIMIT 1", (owner,))
        return rows[0]["id"] if rows else None


def _check_owner(owner: Any) -> str:
    if not isinstance(owner, str) or not owner.strip():
        raise StrataError("a conversation needs an owner")
    return owner


def _clean_title(title: str) -> str:
    title = " ".join(str(title or "").split())
    return title if len(title) <= TITLE_CHARS else title[:TITLE_CHARS - 3].rstrip() + "..."


def _owned(db: sqlite3.Connection, owner: str, id: str) -> sqlite3.Row:
    """The conversation's row if ``owner`` owns it; any other case reads as not found."""
    row = db.execute("SELECT * FROM conversations WHERE id = ? AND owner = ?",
                     (id, owner)).fetchone()
    if row is None:
        raise StrataError(NOT_FOUND)
    return row


def _next_seq(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT coalesce(max(seq), 0) + 1 FROM conversations").fetchone()[0])
