"""The Chroma client (on disk, or a server shared by many app processes) and the version
marker that lets each process tell, in one small read, whether another one has written.

Why a marker: the keyword (BM25) index lives in each process, derived from Chroma. With a
server shared by several processes, one process's index goes stale when another writes.
Counting chunks cannot tell (a replaced document may have as many chunks as before), and
comparing every chunk id on each search costs a full scan. So every committed write also
stores a fresh random token in a one-record side collection; a process rebuilds its index
only when the token (or the chunk count, for writers that predate the marker) differs from
the one it last built from. Random tokens, not a counter: two writers never need to agree
on a next value, and a token never comes back, so no change can go unnoticed.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from assistant.errors import StrataError
from assistant.settings import Settings

MARKER_ID = "version"
MARKER_SUFFIX = "-version"


def make_client(settings: Settings) -> Any:
    """A Chroma client with telemetry off: an HTTP one for ``chroma_url``, else on disk."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        return _http_client(settings, chroma_settings)
    path = Path(settings.data_dir) / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def server_address(url: str) -> tuple[str, int, bool]:
    """(host, port, ssl) of a Chroma server URL; a malformed one is a StrataError naming it,
    so a typo in ASSISTANT_CHROMA_URL reads as a typo, not as a connection failure."""
    try:
        parsed = urlparse(url)
        port = parsed.port
    except ValueError as exc:
        raise StrataError(f"ASSISTANT_CHROMA_URL {url!r} is not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise StrataError(
            f"ASSISTANT_CHROMA_URL {url!r} is not a URL like http://host:8000 (http or https)"
        )
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise StrataError(
            f"ASSISTANT_CHROMA_URL {url!r} has a path; give the server's root, http://host:port"
        )
    return parsed.hostname, port or (443 if parsed.scheme == "https" else 8000), \
        parsed.scheme == "https"


def auth_headers(settings: Settings) -> dict[str, str]:
    """The auth header for the server, in Chroma's own token convention."""
    token = settings.chroma_auth_token
    if not token:
        return {}
    header = settings.chroma_auth_header.strip() or "Authorization"
    value = f"Bearer {token}" if header.lower() == "authorization" else token
    return {header: value}


def _http_client(settings: Settings, chroma_settings: Any) -> Any:
    """Connect now (Chroma checks the server, tenant and database on creation), so a wrong
    URL, token, tenant or database fails at start with the URL named, not mid-answer."""
    import chromadb

    url = str(settings.chroma_url)
    host, port, ssl = server_address(url)
    try:
        client = chromadb.HttpClient(
            host=host, port=port, ssl=ssl, headers=auth_headers(settings) or None,
            settings=chroma_settings, tenant=settings.chroma_tenant,
            database=settings.chroma_database,
        )
        client.heartbeat()
    except Exception as exc:  # noqa: BLE001 - every failure here means "cannot use the server"
        raise StrataError(
            f"cannot use the Chroma server at {url} (tenant {settings.chroma_tenant!r}, "
            f"database {settings.chroma_database!r}): {_reason(exc)}; check "
            "ASSISTANT_CHROMA_URL, ASSISTANT_CHROMA_AUTH_TOKEN and that the server is running"
        ) from None
    return client


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class VersionMarker:
    """A token that changes on every committed write to one chunk collection.

    Lives in its own collection (``<collection>-version``, one record), so it never shows
    up in searches, counts or document lists of the chunk collection.
    """

    def __init__(self, client: Any, collection: str) -> None:
        name = collection[: 512 - len(MARKER_SUFFIX)] + MARKER_SUFFIX
        self.collection = client.get_or_create_collection(
            name, metadata={"strata": f"version marker of {collection}"[:200]},
            embedding_function=None,
        )

    def read(self) -> str | None:
        """The current token (None before any marked write): one small read."""
        got = self.collection.get(ids=[MARKER_ID], include=["metadatas"])
        metas = got.get("metadatas") or []
        return str(metas[0].get("token")) if metas and metas[0] else None

    def bump(self) -> str:
        """Store a fresh token; call after the write is complete, so whoever sees the new
        token also sees the write."""
        token = uuid.uuid4().hex
        self.collection.upsert(ids=[MARKER_ID], embeddings=[[1.0]], metadatas=[{"token": token}])
        return token
