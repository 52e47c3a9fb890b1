"""Chunk records in Chroma: the client, paged metadata reads, and the document list,
which is derived from the chunks' own metadata (no second registry to disagree with it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from assistant.retrieval.generations import visible
from assistant.settings import Settings


def metadatas(collection: Any, where: dict | None = None) -> list[tuple[str, dict]]:
    """(id, metadata) of every chunk matching ``where``, paged to stay under batch limits."""
    out: list[tuple[str, dict]] = []
    page = 5000
    offset = 0
    while True:
        got = collection.get(where=where, include=["metadatas"], limit=page, offset=offset)
        out.extend(zip(got["ids"], [m or {} for m in got["metadatas"]]))
        if len(got["ids"]) < page:
            return out
        offset += page


@dataclass
class DocumentInfo:
    """One ingested document, as the UI and `assistant docs list` show it."""

    name: str
    domain: str
    chunks: int
    sha256: str
    size: int
    ingested_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_client(settings: Settings) -> Any:
    """A Chroma client with telemetry off: an HTTP one for ``chroma_url``, else on disk."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        from urllib.parse import urlparse

        url = urlparse(settings.chroma_url)
        return chromadb.HttpClient(
            host=url.hostname or "localhost",
            port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https",
            settings=chroma_settings,
        )
    path = Path(settings.data_dir) / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def group_documents(rows: list[tuple[str, dict]]) -> list[DocumentInfo]:
    """Chunk metadata -> one DocumentInfo per source name."""
    docs: dict[str, DocumentInfo] = {}
    for _, meta in rows:
        if not visible(meta):
            continue
        name = str(meta.get("source", ""))
        info = docs.get(name)
        if info is None:
            docs[name] = DocumentInfo(
                name=name,
                domain=str(meta.get("domain", "")),
                chunks=1,
                sha256=str(meta.get("sha256", "")),
                size=int(meta.get("size", 0)),
                ingested_at=str(meta.get("ingested_at", "")),
            )
        else:
            info.chunks += 1
    return list(docs.values())
