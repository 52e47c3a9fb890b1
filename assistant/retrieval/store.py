"""The knowledge base in Chroma: chunks with their provenance, searched by cosine similarity.

On disk under ``data_dir/chroma`` (or a Chroma server when ``chroma_url`` is set),
through ``langchain_chroma.Chroma`` so LangChain retrievers work on it too. Every
chunk carries its document's name, domain, sha256, size and ingest time, so the
document list is derived from the chunks themselves: there is no second registry
that could disagree with them. Ingestion rules live in ``assistant.retrieval.ingest``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import StrataError
from assistant.retrieval.lexical import LexicalIndex
from assistant.settings import Settings

if TYPE_CHECKING:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings

    from assistant.retrieval.ingest import IngestResult

log = logging.getLogger(__name__)

COSINE = {"hnsw:space": "cosine"}  # distance = 1 - cosine similarity
Progress = Callable[[int, int, str], None]


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


class KnowledgeStore:
    """Documents as chunks in one Chroma collection; ingest, list, delete, search."""

    def __init__(self, settings: Settings, embedder: Embeddings, client: Any = None) -> None:
        from langchain_chroma import Chroma

        self.settings = settings
        self.embedder = embedder
        self.client = client or make_client(settings)
        model = getattr(embedder, "model_name", type(embedder).__name__)
        metadata = {**COSINE, "embedding_model": model}
        # Always pass our embedder: Chroma's default one downloads a model (fails offline).
        self.vectorstore = Chroma(
            client=self.client,
            collection_name=settings.collection,
            embedding_function=embedder,
            collection_metadata=metadata,
        )
        self.collection = self.client.get_or_create_collection(
            settings.collection, metadata=metadata, embedding_function=None
        )
        self.write_lock = threading.RLock()  # one writer at a time: replace = add then delete
        self.lexical = LexicalIndex()
        stored = (self.collection.metadata or {}).get("embedding_model")
        if stored and stored != model:
            log.warning(
                "collection %r was built with %s, not %s: search results will be wrong; "
                "set ASSISTANT_COLLECTION to a new name or re-ingest",
                settings.collection,
                stored,
                model,
            )

    # --- reading -----------------------------------------------------------------
    def count(self) -> int:
        """Chunks in the store."""
        return self.collection.count()

    def _metadatas(self, where: dict | None = None) -> list[tuple[str, dict]]:
        """(id, metadata) of every chunk matching ``where``, paged to stay under batch limits."""
        out: list[tuple[str, dict]] = []
        page = 5000
        offset = 0
        while True:
            got = self.collection.get(where=where, include=["metadatas"], limit=page, offset=offset)
            out.extend(zip(got["ids"], [m or {} for m in got["metadatas"]]))
            if len(got["ids"]) < page:
                return out
            offset += page

    def document(self, name: str) -> DocumentInfo | None:
        """The stored document called ``name``, if any."""
        docs = _group(self._metadatas({"source": name}))
        return docs[0] if docs else None

    def list_documents(self, domain: str | None = None) -> list[DocumentInfo]:
        """Every document, sorted by domain then name."""
        where = {"domain": domain} if domain else None
        return sorted(_group(self._metadatas(where)), key=lambda d: (d.domain, d.name.lower()))

    def domains(self) -> list[str]:
        return sorted({d.domain for d in self.list_documents()})

    # --- writing -----------------------------------------------------------------
    def add_chunks(
        self, chunks: Sequence[Document], vectors: Sequence[Sequence[float]] | None = None
    ) -> list[str]:
        """Embed then write ``chunks`` all-or-nothing: on any failure the ones written go.

        ``vectors`` skips embedding (imports, benchmarks); they must come from the same model.
        """
        texts = [c.page_content for c in chunks]
        if vectors is None:
            vectors = self.embedder.embed_documents(texts)  # before any write: fails cleanly
        batch_id = uuid.uuid4().hex[:12]
        ids = [f"{batch_id}-{i:05d}" for i in range(len(texts))]
        step = max(1, min(self._max_batch(), 1000))
        written: list[str] = []
        try:
            for start in range(0, len(ids), step):
                part = slice(start, start + step)
                self.collection.add(
                    ids=ids[part],
                    embeddings=vectors[part],
                    documents=texts[part],
                    metadatas=[dict(c.metadata) for c in chunks[part]],
                )
                written.extend(ids[part])
        except Exception:
            self._delete_ids(written)
            raise
        domains = [str(c.metadata.get("domain", "")) for c in chunks]
        self.lexical.add(zip(ids, texts, domains))
        return ids

    def _max_batch(self) -> int:
        try:
            return int(self.client.get_max_batch_size())
        except Exception:  # older servers
            return 1000

    def _delete_ids(self, ids: list[str]) -> None:
        step = 1000
        for start in range(0, len(ids), step):
            self.collection.delete(ids=ids[start : start + step])
        self.lexical.remove(ids)

    def delete_chunks(self, name: str, keep: Sequence[str] = ()) -> int:
        """Delete the chunks of document ``name`` except the ids in ``keep``; how many went."""
        keep_set = set(keep)
        ids = [i for i, _ in self._metadatas({"source": name}) if i not in keep_set]
        self._delete_ids(ids)
        return len(ids)

    def delete_document(self, name: str) -> DocumentInfo:
        """Remove a document by name; unknown names are an error the user can act on."""
        with self.write_lock:
            info = self.document(name)
            if info is None:
                raise StrataError(f"no document named {name!r} (see `assistant docs list`)")
            self.delete_chunks(name)
            return info

    def ingest(
        self,
        paths: Sequence[Path | str | tuple[Path | str, str]],
        domain: str | None = None,
        progress: Progress | None = None,
    ) -> list[IngestResult]:
        """Ingest files (or (path, display name) pairs); one result per file, never raises."""
        from assistant.retrieval.ingest import ingest_files

        return ingest_files(self, paths, domain=domain, progress=progress)

    # --- searching -----------------------------------------------------------------
    def search(
        self,
        query: str,
        k: int | None = None,
        domain: str | None = None,
        score_threshold: float | None = None,
        query_embedding: Sequence[float] | None = None,
        domains: Sequence[str] | None = None,
    ) -> list[Hit]:
        """The k best chunks for ``query`` (dense + keyword fusion), at or above the threshold.

        Pass ``query_embedding`` when the caller (the router) has already embedded the
        query, so it is not embedded twice. ``domains`` keeps only chunks of those domains
        (the app's private uploads: shared domains + the visitor's own); with ``domain``
        too, only their intersection.
        """
        s = self.settings
        k = k or s.retrieval_top_k
        threshold = s.score_threshold if score_threshold is None else score_threshold
        allowed = [domain] if domain is not None else None
        if domains is not None:
            allowed = [d for d in dict.fromkeys(domains) if allowed is None or d in allowed]
        if self.count() == 0 or allowed == []:
            return []
        vector = (
            query_embedding if query_embedding is not None else self.embedder.embed_query(query)
        )
        pool = max(5 * k, 25)  # candidates from each side; the fusion re-ranks their union
        hits = {h.id: h for h in self._dense(list(vector), pool, allowed)}
        if s.keyword_weight > 0:
            keyword = dict(self._keyword_search(query, pool, allowed))
            hits.update(self._hits_by_id([i for i in keyword if i not in hits], vector))
            for chunk_id, value in keyword.items():
                if chunk_id in hits:
                    hits[chunk_id].keyword = round(value, 4)
        ranked = sorted(
            hits.values(), key=lambda h: h.score + s.keyword_weight * h.keyword, reverse=True
        )
        return [h for h in ranked if h.score >= threshold][:k]

    def _dense(self, vector: list[float], n: int, domains: list[str] | None) -> list[Hit]:
        """Nearest chunks by cosine. A domain filter makes Chroma scan (~30 ms at 10k
        chunks), so a wider unfiltered search is tried first and filtered afterwards."""
        search = self.vectorstore.similarity_search_by_vector_with_relevance_scores
        if domains is None:
            return [_hit(doc, d) for doc, d in search(vector, k=n)]
        wide = [_hit(doc, d) for doc, d in search(vector, k=4 * n)]
        mine = [h for h in wide if h.domain in domains]
        if len(mine) >= n or len(wide) < 4 * n:  # enough, or that was every chunk
            return mine[:n]
        where = {"domain": domains[0] if len(domains) == 1 else {"$in": domains}}
        return [_hit(doc, d) for doc, d in search(vector, k=n, filter=where)]

    def _keyword_search(
        self, query: str, n: int, domains: list[str] | None
    ) -> list[tuple[str, float]]:
        self._sync_lexical()
        return self.lexical.search(query, n, domains)

    def _sync_lexical(self) -> None:
        """Bring the BM25 index in line with Chroma (first search, or another writer)."""
        if len(self.lexical) == self.count():
            return
        with self.write_lock:
            stored = {i for i, _ in self._metadatas()}
            indexed = self.lexical.ids()
            self.lexical.remove(indexed - stored)
            missing = sorted(stored - indexed)
            for start in range(0, len(missing), 1000):
                got = self.collection.get(
                    ids=missing[start : start + 1000], include=["documents", "metadatas"]
                )
                metas = [m or {} for m in got["metadatas"]]
                domains = [str(m.get("domain", "")) for m in metas]
                self.lexical.add(zip(got["ids"], [d or "" for d in got["documents"]], domains))

    def _hits_by_id(self, ids: list[str], vector: Sequence[float]) -> dict[str, Hit]:
        """Hits for keyword-only candidates, their cosine computed from the stored vectors."""
        if not ids:
            return {}
        import numpy as np
        from langchain_core.documents import Document

        got = self.collection.get(ids=ids, include=["embeddings", "documents", "metadatas"])
        sims = np.asarray(got["embeddings"], dtype=np.float32) @ np.asarray(
            vector, dtype=np.float32
        )
        out = {}
        for chunk_id, text, meta, sim in zip(got["ids"], got["documents"], got["metadatas"], sims):
            doc = Document(page_content=text or "", metadata=meta or {}, id=chunk_id)
            out[chunk_id] = _hit(doc, 1.0 - float(sim))
        return out


def _hit(doc: Document, distance: float) -> Hit:
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


def _group(rows: list[tuple[str, dict]]) -> list[DocumentInfo]:
    """Chunk metadata -> one DocumentInfo per source name."""
    docs: dict[str, DocumentInfo] = {}
    for _, meta in rows:
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
