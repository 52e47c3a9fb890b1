"""Chunk records in Chroma: paged metadata reads, search hits, and the document list,
which is derived from the chunks' own metadata (no second registry to disagree with it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from assistant.retrieval.generations import visible

if TYPE_CHECKING:
    from langchain_core.documents import Document


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


@dataclass
class Hit:
    """One retrieved chunk; ``score`` is cosine similarity clipped to [0, 1].

    Hits are ranked by ``score + keyword_weight * keyword`` (dense + BM25 fusion) while
    ``score`` alone is what the threshold and the router see: a plain, comparable number.
    """

    id: str
    text: str
    source: str
    domain: str
    section: str
    page: int | None
    chunk: int
    score: float
    keyword: float = 0.0  # BM25 relative to the best keyword match, in [0, 1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def to_hit(doc: Document, distance: float) -> Hit:
    """A search result as a Hit; ``distance`` is Chroma's cosine distance."""
    meta = doc.metadata
    page = meta.get("page")
    return Hit(
        id=str(doc.id),
        text=doc.page_content,
        source=str(meta.get("source", "")),
        domain=str(meta.get("domain", "")),
        section=str(meta.get("section", "")),
        page=int(page) if page is not None else None,
        chunk=int(meta.get("chunk", 0)),
        score=round(min(1.0, max(0.0, 1.0 - float(distance))), 4),
    )
