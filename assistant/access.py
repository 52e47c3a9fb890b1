"""Who may change what in the web app, and which documents each visitor sees.

Shared by the web app (``assistant.ui``) and the API (``assistant.api``), so it lives
below both.

Three settings drive it (see ``assistant.settings``, section "web app"):

- ``auth``: optional logins; with them ``request.username`` names the visitor.
- ``admins``: when set, only these users may upload, delete or train; only they read the
  whole ledger (everyone else sees their own answers and numbers without text).
- ``private_uploads``: each visitor's uploads go to their own domain ``session-<id>``
  and their answers retrieve from the shared domains plus that one only. Stored
  names carry the domain as a prefix (``session-<id>__notes.txt``) because a document
  name is unique in the store: two visitors' ``notes.txt`` must not replace each other.
  The prefix is stripped wherever a name is shown.

No Gradio here: the tabs turn a refusal (``StrataError``) into a message.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from assistant.errors import StrataError

if TYPE_CHECKING:
    from assistant.retrieval.store import DocumentInfo, KnowledgeStore
    from assistant.settings import Settings

SESSION_PREFIX = "session-"
SEPARATOR = "__"
_PRIVATE_NAME = re.compile(rf"^{SESSION_PREFIX}[0-9a-f]{{16}}{SEPARATOR}")


@dataclass(frozen=True)
class Visitor:
    """One browser session: the logged-in user (if any) and Gradio's session hash."""

    user: str | None
    session: str

    @classmethod
    def of(cls, request: object) -> Visitor:
        """From a ``gr.Request`` (None outside a request: a local, anonymous visitor)."""
        user = getattr(request, "username", None) if request is not None else None
        session = getattr(request, "session_hash", None) if request is not None else None
        return cls(user=user or None, session=session or "local")

    @property
    def owner(self) -> str:
        """Who owns this visitor's chats, votes and ledger rows: the login where there is
        one, else this page's session; prefixed so no login can pose as a session."""
        return self.user or f"session:{self.session}"

    def ledger_sessions(self) -> tuple[str, ...]:
        """The ledger sessions whose answers are this visitor's own: the web app's, and a
        login's API calls (``api.auth`` names them ``api:user:<name>``)."""
        return (self.owner, f"api:user:{self.user}") if self.user else (self.owner,)


def parse_auth(auth: str | None) -> list[tuple[str, str]] | None:
    """'user:pass,user2:pass2' -> [(user, pass), ...] for ``launch(auth=...)``."""
    if not auth:
        return None
    pairs = [pair.strip().partition(":") for pair in auth.split(",") if pair.strip()]
    return [(user.strip(), password) for user, _, password in pairs]


def shown_name(stored: str) -> str:
    """The name a visitor sees: a private upload without its session prefix."""
    return _PRIVATE_NAME.sub("", stored, count=1)


class Access:
    """The access rules of one app, from its settings."""

    def __init__(self, settings: Settings) -> None:
        self.private = settings.private_uploads
        self.admins = {name.strip() for name in settings.admins.split(",") if name.strip()}
        self.logins = parse_auth(settings.auth)

    # --- who may change things ------------------------------------------------------
    def is_admin(self, visitor: Visitor) -> bool:
        return bool(self.admins) and visitor.user in self.admins

    def reads_whole_ledger(self, visitor: Visitor) -> bool:
        """Every user's questions and answers (recent answers, the CSV export, per-answer
        figures) are for admins; everyone else reads their own. Not tied to private
        uploads: the ledger holds questions, whoever's documents answered them."""
        return self.is_admin(visitor)

    def can_write(self, visitor: Visitor) -> bool:
        """Upload, delete, train: everyone unless an admin list is set."""
        return not self.admins or visitor.user in self.admins

    def require_write(self, visitor: Visitor, action: str) -> None:
        if self.can_write(visitor):
            return
        who = f"you are logged in as {visitor.user!r}" if visitor.user else "you are not logged in"
        raise StrataError(f"only admins may {action} ({who}); ask an admin to do it for you")

    # --- which documents a visitor sees ------------------------------------------------
    def domain_of(self, visitor: Visitor) -> str | None:
        """The visitor's private domain (None when uploads are shared).

        A logged-in user keeps one domain across visits; an anonymous visitor gets one
        per page load (Gradio's session hash), cleaned up when the page closes.
        """
        if not self.private:
            return None
        key = f"user:{visitor.user}" if visitor.user else f"session:{visitor.session}"
        return SESSION_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:16]

    def retrieval_domains(self, visitor: Visitor, store: KnowledgeStore) -> list[str] | None:
        """Domains this visitor's answers may retrieve from (None: all of them)."""
        own = self.domain_of(visitor)
        if own is None:
            return None
        shared = [d for d in store.domains() if not d.startswith(SESSION_PREFIX)]
        return [*shared, own]

    def visible(self, visitor: Visitor, docs: list[DocumentInfo]) -> list[DocumentInfo]:
        own = self.domain_of(visitor)
        if own is None:
            return docs
        return [d for d in docs if d.domain == own or not d.domain.startswith(SESSION_PREFIX)]

    def stored_name(self, visitor: Visitor, name: str) -> str:
        """The store's name for an upload called ``name`` (prefixed when private)."""
        own = self.domain_of(visitor)
        return f"{own}{SEPARATOR}{name}" if own else name

    def resolve_delete(self, visitor: Visitor, name: str, store: KnowledgeStore) -> str:
        """The stored name of the document ``name`` this visitor may delete, or a refusal."""
        self.require_write(visitor, "delete documents")
        own = self.domain_of(visitor)
        if own is None:
            return name
        mine = self.stored_name(visitor, name)
        if store.document(mine) is not None:
            return mine
        doc = store.document(name)
        if doc is None or doc.domain.startswith(SESSION_PREFIX):  # never reveal others' files
            raise StrataError(f"no document named {name!r} among yours")
        if not self.is_admin(visitor):
            raise StrataError(f"{name!r} is shared with every visitor; only an admin may delete it")
        return name
