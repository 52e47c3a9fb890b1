"""Ingestion rules: what goes into the knowledge base, what is refused, and why.

One result per file and never a half-ingested file: a file is parsed, chunked and
embedded before anything is written, its chunks are written all-or-nothing, and a
changed file replaces its old chunks only after the new ones are in. One bad file
in a batch is reported and the others still go in.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import IngestError
from assistant.retrieval.loaders import SUPPORTED, load_chunks

if TYPE_CHECKING:
    from assistant.retrieval.store import KnowledgeStore, Progress
    from assistant.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_DOMAIN = "general"
_DOMAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass
class IngestResult:
    """What happened to one file: ingested, replaced, duplicate or rejected (with reason)."""

    name: str
    status: str
    domain: str = ""
    chunks: int = 0
    reason: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "rejected"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One human line, as `assistant ingest` prints it."""
        if self.status == "rejected":
            return f"rejected   {self.name}: {self.reason}"
        if self.status == "duplicate":
            return f"duplicate  {self.name}: already ingested, unchanged"
        return f"{self.status:<10} {self.name}: {self.chunks} chunks in {self.domain} ({self.seconds:.1f} s)"


def check_name(name: str) -> None:
    """A display name must be a plain file name: no folders, no '..', no control characters."""
    if not name or not name.strip():
        raise IngestError("empty file name")
    if "/" in name or "\\" in name or name in (".", "..") or Path(name).name != name:
        raise IngestError(f"file name {name!r} has path parts; give a plain file name")
    if any(ord(c) < 32 for c in name) or len(name.encode()) > 255:
        raise IngestError("file name has control characters or is too long")


def check_domain(domain: str) -> str:
    if not _DOMAIN.fullmatch(domain):
        raise IngestError(f"domain {domain!r}: use 1-64 chars of [A-Za-z0-9._-]")
    return domain


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_file(store: KnowledgeStore, path: Path, name: str) -> int:
    """Refuse before reading: bad name, missing, wrong type, empty or too big. Returns size."""
    check_name(name)
    if not path.is_file():
        raise IngestError("not found or not a regular file")
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED:
        raise IngestError(f"unsupported file type {suffix or '(none)'!r}; use {', '.join(sorted(SUPPORTED))}")
    size = path.stat().st_size
    if size == 0:
        raise IngestError("empty file")
    limit = store.settings.max_upload_mb
    if size > limit * 1024 * 1024:
        raise IngestError(f"{size / 1048576:.1f} MB is over the {limit:g} MB limit (max_upload_mb)")
    return size


def ingest_one(store: KnowledgeStore, path: Path, name: str, domain: str | None) -> IngestResult:
    """Ingest one file atomically; the result says what happened (never raises IngestError).

    Without a ``domain`` a known document keeps its own, so re-running an ingest is a no-op.
    """
    started = time.perf_counter()
    try:
        size = _check_file(store, path, name)
        sha = sha256_of(path)
        old = store.document(name)
        domain = check_domain(domain or (old.domain if old else DEFAULT_DOMAIN))
        if old is not None and old.sha256 == sha and old.domain == domain:
            return IngestResult(name, "duplicate", domain, old.chunks)
        s = store.settings
        chunks = load_chunks(path, s.chunk_size, s.chunk_overlap, suffix=Path(name).suffix)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for chunk in chunks:
            chunk.metadata.update(source=name, domain=domain, sha256=sha, size=size, ingested_at=stamp)
        with store.write_lock:
            ids = store.add_chunks(chunks)
            if old is not None:
                store.delete_chunks(name, keep=ids)
    except IngestError as exc:
        return IngestResult(name, "rejected", domain or "", reason=str(exc))
    except Exception as exc:  # a library failure on one file must not stop the batch
        log.exception("ingesting %s failed", name)
        reason = f"failed: {type(exc).__name__}: {' '.join(str(exc).split())}"[:200]
        return IngestResult(name, "rejected", domain or "", reason=reason)
    status = "replaced" if old is not None else "ingested"
    return IngestResult(name, status, domain, len(ids), seconds=round(time.perf_counter() - started, 2))


def expand_paths(paths: Sequence[Path | str]) -> list[Path]:
    """Files as given; directories become their files (recursively, hidden ones skipped)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            files.append(path)
    return files


def ingest_files(
    store: KnowledgeStore,
    items: Sequence[Path | str | tuple[Path | str, str]],
    domain: str | None = None,
    progress: Progress | None = None,
) -> list[IngestResult]:
    """Ingest each file (a path, or (path, display name) for uploads); one result each."""
    pairs = [(Path(i[0]), i[1]) if isinstance(i, tuple) else (Path(i), Path(i).name) for i in items]
    results = []
    for done, (path, name) in enumerate(pairs):
        if progress:
            progress(done, len(pairs), name)
        result = ingest_one(store, path, name, domain)
        log.debug("%s", result.line())
        results.append(result)
    if progress:
        progress(len(pairs), len(pairs), "done")
    return results


def ensure_demo_knowledge(
    settings: Settings, store: KnowledgeStore, progress: Progress | None = None
) -> list[IngestResult]:
    """On an empty store, ingest every ``knowledge_dir/<domain>/docs/`` file as <domain>.

    The app calls this at start so a fresh install answers demo questions at once;
    a store that already has documents (the user's own) is left alone.
    """
    if store.count() > 0:
        return []
    root = Path(settings.knowledge_dir)
    results: list[IngestResult] = []
    for docs in sorted(root.glob("*/docs")):
        if docs.is_dir():
            results.extend(store.ingest(expand_paths([docs]), domain=docs.parent.name, progress=progress))
    return results
