"""Ingestion: files -> checked, read, chunked, embedded -> the store's chunks.

The flow is one way: loaders read files, this module applies the rules (what is
refused and why, duplicates, hashing, one result per file) and hands finished chunks
to the store, which knows chunks, not files. Never a half-ingested file: a file is
parsed, chunked and embedded before anything is written, and the store makes the
write (or a changed file's replace) all-or-nothing as search sees it. One bad file in
a batch is reported and the others still go in. Messages name a file as the user
named it, never by a server path (an upload cache), and a link may not lead out of
the folder being ingested.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from assistant.errors import IngestError, StrataError
from assistant.retrieval.limits import Limits
from assistant.retrieval.loaders import SUPPORTED, load_chunks
from assistant.retrieval.sentences import ranked_texts

if TYPE_CHECKING:
    from assistant.retrieval.store import KnowledgeStore
    from assistant.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_DOMAIN = "general"
EMBED_GROUP = 128  # chunks embedded per encode call: batch-efficient, yet progress moves
_DOMAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
Progress = Callable[[int, int, str], None]  # (files done, files in all, current name)
Item = Path | str | tuple[Path | str, str]  # a path, or (path, display name) for uploads


@dataclass
class IngestResult:
    """What happened to one file: ingested, replaced, duplicate or rejected (with reason)."""

    name: str
    status: str
    domain: str = ""
    chunks: int = 0
    reason: str = ""
    seconds: float = 0.0
    note: str = ""  # something to check although it went in (a guessed encoding)

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
        note = f"; {self.note}" if self.note else ""
        return f"{self.status:<10} {self.name}: {where} ({self.seconds:.1f} s{note})"


@dataclass(frozen=True)
class _File:
    """One file to ingest: where it is, the name the user gave it, the folder it must
    stay inside (a link out of it is refused)."""

    path: Path
    name: str
    root: Path


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


def expand_paths(paths: Sequence[Path | str]) -> list[Path]:
    """Files as given; directories become their files (recursively, hidden ones skipped;
    links to folders are not followed)."""
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


def _inside(file: _File) -> Path:
    """The file's real path, refused when a link leads out of the folder being ingested."""
    target = file.path.resolve()
    if not target.is_relative_to(file.root.resolve()):
        raise IngestError(
            "a link to a file outside the folder being ingested; give the file itself"
        )
    return target


def hide_paths(text: str, path: Path, name: str) -> str:
    """``text`` with every spelling of ``path`` replaced by ``name`` and its folders
    dropped: a message must not show the server's folders (an upload cache). Only whole
    paths are replaced: a folder named ``ing`` leaves "being ingested" alone."""
    for form in sorted({str(path), str(path.absolute()), str(path.resolve())}, key=len)[::-1]:
        text = _whole(form).sub(lambda _: name, text)
    folders = {str(path.parent.absolute()), str(path.resolve().parent), str(path.parent)}
    for folder in sorted(f for f in folders if len(f) > 1 and f != ".")[::-1]:
        text = _whole(folder + os.sep, after="").sub("", text)
        if os.path.isabs(folder):  # a bare relative name may be any word
            text = _whole(folder).sub("(folder)", text)
    return text


def _whole(form: str, after: str = r"(?![\w.~-])") -> re.Pattern[str]:
    """``form`` where it is not part of a longer path or word."""
    return re.compile(r"(?<![\w.~/\\-])" + re.escape(form) + after)


def _failure(file: _File, domain: str | None, exc: Exception) -> IngestResult:
    if isinstance(exc, StrataError):  # our own one-line reasons (IngestError and kin)
        reason = hide_paths(str(exc), file.path, file.name)
    else:  # a library failure must not stop the batch
        log.error("ingesting %s failed: %r", file.path, exc)
        reason = f"failed: {type(exc).__name__}: {' '.join(str(exc).split())}"
        # Paths go before the cut: a path cut in half no longer matches and would show.
        reason = hide_paths(reason, file.path, file.name)[:200]
    return IngestResult(file.name, "rejected", domain or "", reason=reason)


@dataclass
class _Prepared:
    """A file read, checked and chunked, waiting for its vectors."""

    file: _File
    domain: str
    chunks: list[Document]
    replacing: bool
    started: float
    note: str


class Ingestor:
    """Puts files into a store by the ingestion rules; one result per file, never raises."""

    def __init__(self, store: KnowledgeStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.limits = Limits.from_settings(settings)

    def ingest(
        self, items: Sequence[Item], domain: str | None = None, progress: Progress | None = None
    ) -> list[IngestResult]:
        """Ingest files (a path, or (path, display name) for uploads); one result each.

        Without a ``domain`` a known document keeps its own, so re-running is a no-op.
        """
        pairs = [(Path(i[0]), i[1]) if isinstance(i, tuple) else (Path(i), Path(i).name)
                 for i in items]
        return self._run([_File(path, name, path.parent) for path, name in pairs], domain,
                         progress)

    def ingest_paths(
        self, paths: Sequence[Path | str], domain: str | None = None,
        progress: Progress | None = None,
    ) -> list[IngestResult]:
        """Ingest files and folders as the user named them: a folder's files must stay
        inside it (links out are refused), a file given alone inside its own folder."""
        files: list[_File] = []
        for raw in paths:
            path = Path(raw)
            root = path if path.is_dir() else path.parent
            files.extend(_File(f, f.name, root) for f in expand_paths([path]))
        return self._run(files, domain, progress)

    def _run(
        self, files: list[_File], domain: str | None, progress: Progress | None
    ) -> list[IngestResult]:
        """Files are chunked one by one, and their chunks embedded together in groups of
        about EMBED_GROUP: per-file encode calls cost far more than one length-sorted call.
        ``progress(done, total, name)`` is called as each file's result becomes final."""
        total, done = len(files), 0
        results: list[IngestResult | None] = [None] * total
        group: list[tuple[int, _Prepared]] = []

        def finish(index: int, result: IngestResult) -> None:
            nonlocal done
            results[index], done = result, done + 1
            log.debug("%s", result.line())
            if progress:
                progress(done, total, result.name)

        def flush() -> None:
            for (index, _), result in zip(group, self._embed_and_write([p for _, p in group])):
                finish(index, result)
            group.clear()

        if progress:
            progress(0, total, "reading")
        for index, file in enumerate(files):
            prepared = self._prepare(file, domain)
            if isinstance(prepared, IngestResult):
                finish(index, prepared)
                continue
            group.append((index, prepared))
            if sum(len(item.chunks) for _, item in group) >= EMBED_GROUP:
                flush()
        flush()
        return [r for r in results if r is not None]

    def _check_file(self, file: _File) -> tuple[Path, int]:
        """Refuse before reading: bad name, link out, missing, wrong type, empty or too big.
        Returns the real path and the size."""
        check_name(file.name)
        if not file.path.is_file():
            raise IngestError("not found or not a regular file")
        target = _inside(file)
        suffix = Path(file.name).suffix.lower()
        if suffix not in SUPPORTED:
            raise IngestError(
                f"unsupported file type {suffix or '(none)'!r}; use {', '.join(sorted(SUPPORTED))}"
            )
        size = target.stat().st_size
        if size == 0:
            raise IngestError("empty file")
        limit = self.settings.max_upload_mb
        if size > limit * 1024 * 1024:
            raise IngestError(
                f"{size / 1048576:.1f} MB is over the {limit:g} MB limit (max_upload_mb)"
            )
        return target, size

    def _prepare(self, file: _File, domain: str | None) -> _Prepared | IngestResult:
        """Check, hash and chunk one file; a result (duplicate, rejected) when it stops here."""
        started = time.perf_counter()
        notes: list[str] = []
        try:
            target, size = self._check_file(file)
            sha = sha256_of(target)
            old = self.store.document(file.name)
            domain = check_domain(domain or (old.domain if old else DEFAULT_DOMAIN))
            if old is not None and old.sha256 == sha and old.domain == domain:
                return IngestResult(file.name, "duplicate", domain, old.chunks)
            s = self.settings
            chunks = load_chunks(target, s.chunk_size, s.chunk_overlap, Path(file.name).suffix,
                                 self.limits, notes)
        except Exception as exc:  # noqa: BLE001 - any failure rejects this file only
            return _failure(file, domain, exc)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        for chunk in chunks:
            chunk.metadata.update(
                source=file.name, domain=domain, sha256=sha, size=size, ingested_at=stamp
            )
        return _Prepared(file, domain, chunks, old is not None, started, "; ".join(notes))

    def _embed_and_write(self, group: list[_Prepared]) -> list[IngestResult]:
        """One encode call for the whole group (length-sorted batches across files), the
        chunks' sentences included (prompt mode ranks them: assistant.retrieval.sentences);
        if it fails, each file is embedded alone so only the culprit is rejected."""
        texts = [c.page_content for item in group for c in item.chunks]
        sentences = [ranked_texts((c.page_content, str(c.metadata.get("section", "")))
                                  for c in item.chunks) for item in group]
        try:
            vectors = self.store.embedder.embed_documents(texts + [t for s in sentences for t in s])
        except Exception as exc:  # noqa: BLE001 - retried file by file below
            if len(group) > 1:
                return [r for item in group for r in self._embed_and_write([item])]
            return [_failure(group[0].file, group[0].domain, exc)]
        results, start, extra = [], 0, len(texts)
        for item, own in zip(group, sentences, strict=True):
            chunk_vectors = vectors[start : start + len(item.chunks)]
            results.append(self._write(item, chunk_vectors, own, vectors[extra : extra + len(own)]))
            start, extra = start + len(item.chunks), extra + len(own)
        return results

    def _write(self, item: _Prepared, vectors: Any, sentences: list[str],
               sentence_vectors: Any) -> IngestResult:
        """The store swaps the document's chunks for these as one step search can see;
        then its sentence vectors are stored (missing ones are embedded when asked for)."""
        try:
            replaced = self.store.replace_document(item.file.name, item.chunks, vectors=vectors)
        except Exception as exc:  # noqa: BLE001 - reported in the result
            return _failure(item.file, item.domain, exc)
        try:
            self.store.sentences.replace(item.file.name, sentences, sentence_vectors)
        except Exception as exc:  # noqa: BLE001 - costs question-time speed, not the file
            log.warning("sentence vectors of %s not stored (%s)", item.file.name, exc)
        status = "replaced" if item.replacing or replaced else "ingested"
        seconds = round(time.perf_counter() - item.started, 2)
        return IngestResult(item.file.name, status, item.domain, len(item.chunks),
                            seconds=seconds, note=item.note)


def ensure_demo_knowledge(
    settings: Settings, store: KnowledgeStore, progress: Progress | None = None
) -> list[IngestResult]:
    """On an empty store, ingest every ``knowledge_dir/<domain>/docs/`` file as <domain>.

    The app calls this at start so a fresh install answers demo questions at once;
    a store that already has documents (the user's own) is left alone.
    """
    if store.count() > 0:
        return []
    ingestor = Ingestor(store, settings)
    results: list[IngestResult] = []
    for docs in sorted(Path(settings.knowledge_dir).glob("*/docs")):
        if docs.is_dir():
            results.extend(ingestor.ingest_paths([docs], domain=docs.parent.name,
                                                 progress=progress))
    return results
