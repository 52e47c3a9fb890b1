"""Which files the web server hands out, and to whom.

Gradio serves every file in its upload cache to any visitor who passes its login and names
the path (``GET /gradio_api/file=<path>``). Left alone, one user could fetch another's
upload or the admin's ledger export. So:

- an upload is never served back, and leaves the cache as soon as its handler is done
  with it, ingested or refused (``discard_upload``): the store keeps chunks, never files;
  what a killed process left is swept by age (``keep_uploads_swept``);
- an export is written to its own unguessable folder in the cache and registered in
  ``Exports`` with its owner. ``FileGuard``, in front of Gradio's file routes, serves
  nothing in the cache but exports, each to its logged-in owner only; in an app without
  logins (no one to check), to the first request for it, once. An export goes when its
  session ends or after ``EXPORT_TTL_S``;
- Strata's own folders (data, adapters, knowledge) must lie outside the cache and any
  ``allowed_paths`` (``check_not_served``): Gradio refuses every other path.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import StrataError

if TYPE_CHECKING:
    from assistant.access import Visitor
    from assistant.settings import Settings

log = logging.getLogger(__name__)
EXPORT_PREFIX = "strata-export-"
EXPORT_TTL_S = 15 * 60  # time enough to click the link; a fresh export is one click away
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/")  # Gradio 6's two spellings
SERVE, SERVE_ONCE, REFUSE, NOT_OURS = "serve", "serve-once", "refuse", "not-ours"


def upload_folder() -> Path:
    """Gradio's upload cache (``GRADIO_TEMP_DIR``, else ``<tmp>/gradio``), resolved."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


# --- uploads ------------------------------------------------------------------------------
def discard_upload(path: str | Path, root: Path | None = None) -> None:
    """Delete an uploaded file from Gradio's cache, and its folder once empty.

    Files anywhere else (a CLI user's, a test's) are never touched.
    """
    root = (root or upload_folder()).resolve()
    file = Path(os.path.abspath(path))
    folder = file.parent.resolve()
    if not _inside(folder, root):
        return
    try:
        file.unlink(missing_ok=True)
        if folder != root and not any(folder.iterdir()):
            folder.rmdir()
    except OSError as exc:  # a concurrent identical upload may share the folder
        log.warning("could not remove upload %s: %s", file.name, exc)


def sweep_uploads(max_age_s: float, root: Path | None = None) -> int:
    """Delete files in the upload cache older than ``max_age_s`` (and folders left empty);
    returns how many. Gradio's own sweep (``delete_cache``) knows only the files its
    process cached, so an upload cut off by a kill -9 would stay for good; the age keeps
    the fresh uploads of another app sharing the cache. Exports are dead by then."""
    root = (root or upload_folder()).resolve()
    cutoff, removed = time.time() - max_age_s, 0
    for folder, _, names in os.walk(root, topdown=False):
        for name in names:
            file = Path(folder) / name
            try:
                if not file.is_symlink() and file.stat().st_mtime < cutoff:
                    file.unlink()
                    removed += 1
            except OSError:  # gone already, or not ours to delete
                continue
        if Path(folder) != root and not any(Path(folder).iterdir()):
            shutil.rmtree(folder, ignore_errors=True)
    return removed


def keep_uploads_swept(max_age_s: float) -> None:
    """Sweep the upload cache now (what a killed process left) and then every
    ``max_age_s`` in a daemon thread, for as long as the process runs."""
    def loop() -> None:
        while True:
            try:
                if removed := sweep_uploads(max_age_s):
                    log.info("removed %d stale upload(s) from the cache", removed)
            except OSError as exc:
                log.warning("could not sweep the upload cache: %s", exc)
            time.sleep(max_age_s)

    threading.Thread(target=loop, daemon=True, name="upload-sweeper").start()


def hide_server_paths(text: str, root: Path | None = None) -> str:
    """``text`` with every path inside the upload cache replaced by its file name
    (ingestion names files as the user did; this catches what a library still says)."""
    from gradio.utils import get_upload_folder

    roots = {str(root)} if root else {get_upload_folder(), str(upload_folder())}
    for folder in sorted(roots, key=len, reverse=True):  # as configured, and resolved
        pattern = re.escape(folder.rstrip("/")) + r"""/[^\s'"`,;)]*"""
        text = re.sub(pattern, lambda m: Path(m.group()).name, text)
    return text


# --- exports ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Export:
    """One export folder: who may fetch it, which session made it, when."""

    folder: Path
    owner: str | None
    session: str
    created: float


class Exports:
    """The registry of export folders the file route may serve, each to its owner only."""

    def __init__(self, root: Path | None = None, ttl_s: float = EXPORT_TTL_S) -> None:
        self._root = root
        self.ttl_s = ttl_s
        self._exports: dict[Path, Export] = {}
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        """Exports live in Gradio's cache, so gr.File serves them without a copy."""
        return (self._root or upload_folder()).resolve()

    def create(self, visitor: Visitor, filename: str) -> Path:
        """A fresh path for ``visitor``'s export, in a folder no one else can name."""
        self.expire()
        folder = self.root / f"{EXPORT_PREFIX}{secrets.token_hex(16)}"
        folder.mkdir(parents=True, mode=0o700)
        with self._lock:
            self._exports[folder] = Export(folder, visitor.user, visitor.session, time.time())
        return folder / filename

    def verdict(self, requested: str, user: str | None, consume: bool) -> tuple[str, Export | None]:
        """What the file route does with ``requested`` for ``user`` (None: not logged in).

        In the cache only a live export is served, to its owner: an upload in flight is
        never served back. ``consume`` (a GET) claims a serve-once export.
        """
        self.expire()
        path = Path(os.path.abspath(requested)).resolve()
        root = self.root
        if not _inside(path, root):
            return NOT_OURS, None  # Gradio's own rules refuse it unless allowed_paths say so
        parts = path.relative_to(root).parts
        top = root / parts[0] if parts else root
        with self._lock:
            export = self._exports.get(top)
            if export is None or (export.owner or None) != (user or None):
                return REFUSE, None  # an upload, expired, someone else's: all look missing
            if export.owner is not None:
                return SERVE, export
            if consume:
                del self._exports[top]
            return SERVE_ONCE, export

    def drop(self, exports: Iterable[Export]) -> None:
        """Forget these exports and delete their folders."""
        for export in exports:
            with self._lock:
                self._exports.pop(export.folder, None)
            shutil.rmtree(export.folder, ignore_errors=True)

    def forget_session(self, session: str) -> None:
        """The session's page closed: its exports go."""
        with self._lock:
            gone = [e for e in self._exports.values() if e.session == session]
        self.drop(gone)

    def expire(self) -> None:
        cutoff = time.time() - self.ttl_s
        with self._lock:
            old = [e for e in self._exports.values() if e.created < cutoff]
        self.drop(old)


# --- the guard in front of Gradio's file routes ---------------------------------------------
def requested_file(url_path: str) -> str | None:
    """The file path named by a request to one of Gradio's file routes, else None."""
    for route in FILE_ROUTES:
        if route in url_path:
            return url_path.split(route, 1)[1]
    return None


def requester(scope: dict[str, Any]) -> str | None:
    """The logged-in user of a request, found as Gradio's own login check finds it."""
    from starlette.requests import Request

    app = scope.get("app")
    cookie_id = getattr(app, "cookie_id", None)
    tokens = getattr(app, "tokens", None) or {}
    cookies = Request(scope).cookies
    token = (cookies.get(f"access-token-{cookie_id}")
             or cookies.get(f"access-token-unsecure-{cookie_id}"))
    return tokens.get(token) if token else None


class FileGuard:
    """ASGI middleware: exports reach their owner only; other files follow Gradio's rules."""

    def __init__(self, app: Any, exports: Exports) -> None:
        self.app = app
        self.exports = exports

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        requested = requested_file(scope.get("path", "")) if scope["type"] == "http" else None
        if requested is None:
            await self.app(scope, receive, send)
            return
        consume = scope.get("method") == "GET"
        decision, export = self.exports.verdict(requested, requester(scope), consume)
        if decision == REFUSE:
            from starlette.responses import PlainTextResponse

            await PlainTextResponse("File not found.", status_code=404)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            if decision == SERVE_ONCE and consume and export is not None:
                self.exports.drop([export])


def guard_middleware(exports: Exports) -> Any:
    """The ``middleware`` entry for ``launch(app_kwargs=...)``."""
    from starlette.middleware import Middleware

    return Middleware(FileGuard, exports=exports)


# --- Strata's folders stay out of the file routes -------------------------------------------
def check_not_served(settings: Settings, allowed_paths: Iterable[str | Path] = ()) -> None:
    """Refuse to start if the data, adapter or knowledge folder would be servable."""
    served = [upload_folder(), *(Path(p).resolve() for p in allowed_paths)]
    for label, folder in (("data", settings.data_dir), ("adapters", settings.adapters_dir),
                          ("knowledge", settings.knowledge_dir)):
        mine = Path(folder).resolve()
        for root in served:
            if _inside(mine, root):
                raise StrataError(
                    f"the {label} folder {mine} overlaps {root}, which the web server "
                    f"serves to visitors; move one of them (ASSISTANT_DATA_DIR, GRADIO_TEMP_DIR)")
