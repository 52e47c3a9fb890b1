"""The knowledge base in Chroma: chunks with their provenance, searched by cosine similarity.

On disk under ``data_dir/chroma`` (or a Chroma server when ``chroma_url`` is set),
through ``langchain_chroma.Chroma`` so LangChain retrievers work on it too. Every
chunk carries its document's name, domain, sha256, size and ingest time, so the
document list is derived from the chunks themselves: there is no second registry
that could disagree with them. The store knows chunks, not files: reading files and
the rules of what goes in live in ``assistant.retrieval.ingest``, which calls this.
Each write is all-or-nothing as search sees it, across crashes too (see
``assistant.retrieval.generations``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from assistant.errors import StrataError
from assistant.retrieval import generations as gen
from assistant.retrieval.chunks import DocumentInfo, Hit, group_documents, metadatas, to_hit
from assistant.retrieval.client import VersionMarker, make_client
from assistant.retrieval.lexical import LexicalIndex
from assistant.retrieval.sentences import SentenceVectors
from assistant.settings import Settings

if TYPE_CHECKING:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings

log = logging.getLogger(__name__)

COSINE = {"hnsw:space": "cosine"}  # distance = 1 - cosine similarity


class KnowledgeStore:
    """Documents as chunks in one Chroma collection: add, replace, delete, list, search."""

    def __init__(self, settings: Settings, embedder: Embeddings, client: Any = None) -> None:
        from langchain_chroma import Chroma

        self.settings = settings
        self.embedder = embedder  # documents and queries: one model, or the cosines mean nothing
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
        # Prompt mode's sentence vectors, embedded at ingestion (assistant.retrieval.sentences)
        self.sentences = SentenceVectors(settings.data_dir / "sentence_vectors.db", model,
                                         settings.collection)
        self._write_lock = threading.RLock()  # one writer at a time
        self._gate = gen.Gate()  # searches wait while a write commits
        self._lexical_lock = threading.Lock()
        self.lexical = LexicalIndex()
        self.marker = VersionMarker(self.client, settings.collection)  # bumped on every write
        self._synced: tuple[str | None, int] | None = None  # (marker, count) last indexed
        self._pending = 0  # chunks this store has written and not yet committed
        stored = (self.collection.metadata or {}).get("embedding_model")
        if stored and stored != model:
            log.warning(
                "collection %r was built with %s, not %s: search results will be wrong; "
                "set ASSISTANT_COLLECTION to a new name or re-ingest",
                settings.collection,
                stored,
                model,
            )
        self.recover()

    def close(self) -> None:
        """Release the Chroma client once a write under way has committed (the app is
        stopping: an embedded store's files are then whole for the next start)."""
        with self._write_lock:
            closer = getattr(self.client, "close", None)
            if closer is not None:
                closer()

    # --- reading -----------------------------------------------------------------
    def count(self) -> int:
        """Chunks in the store (with those of a write still under way)."""
        return self.collection.count()

    def _metadatas(self, where: dict | None = None) -> list[tuple[str, dict]]:
        return metadatas(self.collection, where)

    def document(self, name: str) -> DocumentInfo | None:
        """The stored document called ``name``, if any."""
        with self._gate.reading():
            docs = group_documents(self._metadatas({"source": name}))
        return docs[0] if docs else None

    def list_documents(self, domain: str | None = None) -> list[DocumentInfo]:
        """Every document, sorted by domain then name."""
        where = {"domain": domain} if domain else None
        with self._gate.reading():
            docs = group_documents(self._metadatas(where))
        return sorted(docs, key=lambda d: (d.domain, d.name.lower()))

    def domains(self) -> list[str]:
        return sorted({d.domain for d in self.list_documents()})

    def chunks(self, domain: str | None = None) -> list[Hit]:
        """Every committed chunk (of one domain), score 0, in document and chunk order: for
        tools that read a whole domain (`assistant synth`), not for answering."""
        from langchain_core.documents import Document

        where = {"domain": domain} if domain else None
        with self._gate.reading():
            ids = [i for i, m in self._metadatas(where) if gen.visible(m)]
            hits = []
            for start in range(0, len(ids), 1000):
                got = self.collection.get(ids=ids[start : start + 1000],
                                          include=["documents", "metadatas"])
                hits += [to_hit(Document(page_content=t or "", metadata=m or {}, id=i), 1.0)
                         for i, t, m in zip(got["ids"], got["documents"], got["metadatas"],
                                            strict=True)]
        return sorted(hits, key=lambda h: (h.source, h.chunk))

    # --- writing -----------------------------------------------------------------
    def add_chunks(
        self, chunks: Sequence[Document], vectors: Sequence[Sequence[float]] | None = None
    ) -> list[str]:
        """Add ``chunks``: search sees all of them at once, or none if this fails.

        ``vectors`` skips embedding (imports, benchmarks); they must come from the same model.
        """
        return self._write(chunks, vectors, replacing=None)[0]

    def replace_document(
        self,
        name: str,
        chunks: Sequence[Document],
        vectors: Sequence[Sequence[float]] | None = None,
    ) -> int:
        """Make ``chunks`` the whole of document ``name``; returns how many old chunks went.

        Search sees the old version whole until the new one is complete, then only the
        new one; a crash in between is finished or rolled back when a store next opens.
        """
        return self._write(chunks, vectors, replacing=name)[1]

    def _write(
        self, chunks: Sequence[Document], vectors: Any, replacing: str | None
    ) -> tuple[list[str], int]:
        texts = [c.page_content for c in chunks]
        if vectors is None:
            vectors = self.embedder.embed_documents(texts)  # before any write: fails cleanly
        generation = gen.new_generation()
        marks = gen.pending_marks(generation, len(texts), "replace" if replacing else "add")
        named = {"source": replacing} if replacing is not None else {}
        metadatas = [{**c.metadata, **named, **marks} for c in chunks]
        ids = [f"{generation}-{i:05d}" for i in range(len(texts))]
        with self._write_lock:
            self._add_pending(ids, vectors, texts, metadatas)
            try:
                replaced = self._commit(ids, texts, metadatas, replacing)
            except Exception:  # a store error mid-commit: finish it once more, or leave it
                log.warning("commit of %s failed; retrying once", generation, exc_info=True)
                replaced = self._commit(ids, texts, metadatas, replacing)
        return ids, replaced

    def _add_pending(self, ids: list[str], vectors: Any, texts: list[str], metas: list) -> None:
        """Write the chunks marked pending, in batches; on any failure the ones written go."""
        step = max(1, min(self._max_batch(), 1000))
        written: list[str] = []
        try:
            for start in range(0, len(ids), step):
                part = slice(start, start + step)
                self.collection.add(
                    ids=ids[part], embeddings=vectors[part], documents=texts[part],
                    metadatas=metas[part],
                )
                written.extend(ids[part])
                self._pending += len(ids[part])
        except Exception:
            self._delete_ids(written)
            self._pending -= len(written)
            raise

    def _commit(
        self, ids: list[str], texts: list[str], metas: list[dict], replacing: str | None
    ) -> int:
        """Delete the document's other chunks and clear the new ones' marks, as one step
        for every search in this process."""
        keep = set(ids)
        with self._gate.writing():
            old = []
            if replacing is not None:
                old = [i for i, _ in self._metadatas({"source": replacing}) if i not in keep]
            self._delete_ids(old)
            self._clear_marks(ids)
            self.lexical.add((i, t, str(m.get("domain", ""))) for i, t, m in zip(ids, texts, metas))
            self._pending = max(0, self._pending - len(ids))
            self.marker.bump()  # other processes' keyword indexes now know to catch up
        return len(old)

    def _clear_marks(self, ids: list[str]) -> None:
        step = max(1, min(self._max_batch(), 1000))
        for start in range(0, len(ids), step):
            part = ids[start : start + step]
            self.collection.update(ids=part, metadatas=[dict(gen.COMMITTED)] * len(part))

    def _max_batch(self) -> int:
        try:
            return int(self.client.get_max_batch_size())
        except Exception:  # noqa: BLE001 - older servers lack the call
            return 1000

    def _delete_ids(self, ids: list[str]) -> None:
        step = 1000
        for start in range(0, len(ids), step):
            self.collection.delete(ids=ids[start : start + step])
        self.lexical.remove(ids)

    def delete_document(self, name: str) -> DocumentInfo:
        """Remove a document by name; unknown names are an error the user can act on."""
        with self._write_lock, self._gate.writing():
            rows = self._metadatas({"source": name})
            docs = group_documents(rows)
            if not docs:
                raise StrataError(f"no document named {name!r} (see `assistant docs list`)")
            self._delete_ids([i for i, _ in rows])
            self.sentences.forget(name)
            self.marker.bump()
            return docs[0]

    def recover(self) -> int:
        """Finish (all chunks in) or roll back (some missing) the writes a dead writer left
        pending; how many. Run when the store opens."""
        pending = self._metadatas({gen.PENDING: {"$in": list(gen.MODES)}})
        firsts = {m.get(gen.GENERATION): m for _, m in pending}
        done = 0
        with self._write_lock:  # newest first: a finished replace drops older attempts
            for generation, meta in sorted(firsts.items(), key=lambda g: str(g[0]), reverse=True):
                if not generation or not gen.abandoned(meta):
                    continue
                ids = [i for i, _ in self._metadatas({gen.GENERATION: generation})]
                complete = len(ids) == int(meta.get(gen.PARTS, -1))
                log.warning("%s an interrupted write of %r", "finishing" if complete
                            else "rolling back", meta.get("source"))
                if complete:
                    replacing = meta.get("source") if meta.get(gen.PENDING) == "replace" else None
                    self._finish(ids, replacing)
                else:
                    self._delete_ids(ids)
                done += 1
        return done

    def _finish(self, ids: list[str], replacing: Any) -> None:
        got = self.collection.get(ids=ids, include=["documents", "metadatas"])
        texts = [t or "" for t in got["documents"]]
        self._commit(list(got["ids"]), texts, [m or {} for m in got["metadatas"]], replacing)

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
        with self._gate.reading():  # never between a write's delete and its commit
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
        """Nearest chunks by cosine. A domain filter makes Chroma scan (slower at 10k chunks:
        `python -m bench.run retrieval`), so a wider unfiltered search is tried first and
        filtered afterwards."""
        extra = min(self._pending, 4 * n)  # room for chunks of a write under way, dropped here

        def search(k: int, **kwargs: Any) -> list[Hit]:
            room = k + extra
            for _ in range(6):  # wider while another process's pending chunks crowd them out
                found = self.vectorstore.similarity_search_by_vector_with_relevance_scores(
                    vector, k=room, **kwargs
                )
                hits = [to_hit(doc, d) for doc, d in found if gen.visible(doc.metadata)]
                if len(hits) >= k or len(found) < room:  # enough, or every chunk seen
                    break
                room *= 2
            return hits[:k]

        if domains is None:
            return search(n)
        wide = search(4 * n)
        mine = [h for h in wide if h.domain in domains]
        if len(mine) >= n or len(wide) < 4 * n:  # enough, or that was every chunk
            return mine[:n]
        where = {"domain": domains[0] if len(domains) == 1 else {"$in": domains}}
        return search(n, filter=where)

    def _keyword_search(
        self, query: str, n: int, domains: list[str] | None
    ) -> list[tuple[str, float]]:
        self._sync_lexical()
        return self.lexical.search(query, n, domains)

    def _sync_lexical(self) -> None:
        """Bring the BM25 index in line with Chroma when anyone (this store or another
        process on the same Chroma) has written since it was last built: two small reads
        (the version marker and the count) when nothing has, one scan of the chunk ids
        when something has (see ``assistant.retrieval.client``)."""
        if self._version() == self._synced:
            return
        with self._lexical_lock:
            version = self._version()  # read before the chunks: a write after it shows next time
            if version == self._synced:
                return
            stored = {i for i, m in self._metadatas() if gen.visible(m)}
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
            self._synced = version

    def _version(self) -> tuple[str | None, int]:
        return self.marker.read(), self.count()

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
            out[chunk_id] = to_hit(doc, 1.0 - float(sim))
        return out
