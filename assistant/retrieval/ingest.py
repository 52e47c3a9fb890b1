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
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from assistant.errors import IngestError, StrataError
from assistant.retrieval.loaders import SUPPORTED, load_chunks

if TYPE_CHECKING:
    from assistant.retrieval.store import KnowledgeStore, Progress
    from assistant.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_DOMAIN = "general"
EMBED_GROUP = 128  # chunks embedded per encode call: batch-efficient, yet progress moves
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
        where = f"{self.chunks} chunks in {self.domain}"
        return f"{self.status:<10} {self.name}: {where} ({self.seconds:.1f} s)"


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
        raise IngestError(
            f"unsupported file type {suffix or '(none)'!r}; use {', '.join(sorted(SUPPORTED))}"
        )
    size = path.stat().st_size
    if size == 0:
        raise IngestError("empty file")
    limit = store.settings.max_upload_mb
    if size > limit * 1024 * 1024:
        raise IngestError(f"{size / 1048576:.1f} MB is over the {limit:g} MB limit (max_upload_mb)")
    return size


@dataclass
class _Prepared:
    """A file read, checked and chunked, waiting for its vectors."""

    name: str
    domain: str
    chunks: list[Document]
    replacing: bool
    started: float


def _failure(name: str, domain: str | None, exc: Exception) -> IngestResult:
    if isinstance(exc, StrataError):  # our own one-line reasons (IngestError and kin)
        return IngestResult(name, "rejected", domain or "", reason=str(exc))
    log.error("ingesting %s failed: %r", name, exc)  # a library failure must not stop the batch
    reason = f"failed: {type(exc).__name__}: {' '.join(str(exc).split())}"[:200]
    return IngestResult(name, "rejected", domain or "", reason=reason)


def prepare(
    store: KnowledgeStore, path: Path, name: str, domain: str | None
) -> _Prepared | IngestResult:
    """Check, hash and chunk one file; a result (duplicate, rejected) when it stops here.

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
    except Exception as exc:
        return _failure(name, domain, exc)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    for chunk in chunks:
        chunk.metadata.update(source=name, domain=domain, sha256=sha, size=size, ingested_at=stamp)
    return _Prepared(name, domain, chunks, old is not None, started)


def _write(store: KnowledgeStore, item: _Prepared, vectors: Any) -> IngestResult:
    """Add the new chunks, then drop the old version's: a reader never sees neither."""
    try:
        with store.write_lock:
            ids = store.add_chunks(item.chunks, vectors=vectors)
            replaced = store.delete_chunks(item.name, keep=ids)
    except Exception as exc:
        return _failure(item.name, item.domain, exc)
    status = "replaced" if item.replacing or replaced else "ingested"
    seconds = round(time.perf_counter() - item.started, 2)
    return IngestResult(item.name, status, item.domain, len(ids), seconds=seconds)


def _embed_and_write(store: KnowledgeStore, group: list[_Prepared]) -> list[IngestResult]:
    """One encode call for the whole group (length-sorted batches across files); if it
    fails, each file is embedded alone so only the culprit is rejected."""
    texts = [c.page_content for item in group for c in item.chunks]
    try:
        vectors = store.embedder.embed_documents(texts)
    except Exception as exc:
        if len(group) > 1:
            return [r for item in group for r in _embed_and_write(store, [item])]
        return [_failure(group[0].name, group[0].domain, exc)]
    results, start = [], 0
    for item in group:
        results.append(_write(store, item, vectors[start : start + len(item.chunks)]))
        start += len(item.chunks)
    return results


def ingest_one(store: KnowledgeStore, path: Path, name: str, domain: str | None) -> IngestResult:
    """Ingest one file atomically; the result says what happened (never raises IngestError)."""
    prepared = prepare(store, path, name, domain)
    if isinstance(prepared, IngestResult):
        return prepared
    return _embed_and_write(store, [prepared])[0]


def expand_paths(paths: Sequence[Path | str]) -> list[Path]:
    """Files as given; directories become their files (recursively, hidden ones skipped)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
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
    """Ingest each file (a path, or (path, display name) for uploads); one result each.

    Files are chunked one by one, and their chunks embedded together in groups of about
    EMBED_GROUP: per-file encode calls cost up to 2x the time of one length-sorted call.
    ``progress(done, total, name)`` is called as each file's result becomes final.
    """
    pairs = [(Path(i[0]), i[1]) if isinstance(i, tuple) else (Path(i), Path(i).name) for i in items]
    total, done, results = len(pairs), 0, [None] * len(pairs)
    group: list[tuple[int, _Prepared]] = []

    def finish(index: int, result: IngestResult) -> None:
        nonlocal done
        results[index], done = result, done + 1
        log.debug("%s", result.line())
        if progress:
            progress(done, total, result.name)

    def flush() -> None:
        for (index, _), result in zip(group, _embed_and_write(store, [item for _, item in group])):
            finish(index, result)
        group.clear()

    if progress:
        progress(0, total, "reading")
    for index, (path, name) in enumerate(pairs):
        prepared = prepare(store, path, name, domain)
        if isinstance(prepared, IngestResult):
            finish(index, prepared)
            continue
        group.append((index, prepared))
        if sum(len(item.chunks) for _, item in group) >= EMBED_GROUP:
            flush()
    flush()
    return [r for r in results if r is not None]


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
            results.extend(
                store.ingest(expand_paths([docs]), domain=docs.parent.name, progress=progress)
            )
    return results
