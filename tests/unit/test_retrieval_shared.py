"""Several stores on one Chroma (as several app processes on one server are): each one's
keyword index follows the others' writes exactly, and rebuilds only when one happened.
Also the Chroma client's settings: server URL, auth header, tenant and database."""

from __future__ import annotations

import pytest

from assistant.errors import StrataError
from assistant.retrieval.client import auth_headers, make_client, server_address
from assistant.retrieval.ingest import Ingestor
from assistant.retrieval.store import KnowledgeStore
from assistant.settings import Settings

# Same line lengths, so both versions split into the same number of chunks.
OLD = "\n\n".join(f"Paragraph {i}: the sluice gate opens at dawn." for i in range(12))
NEW = "\n\n".join(f"Paragraph {i}: the beehive yard opens at noon." for i in range(12))


@pytest.fixture
def pair(knowledge_settings, fake_embedder):
    """Two stores on one on-disk Chroma path: a writer and a reader."""
    writer = KnowledgeStore(knowledge_settings, fake_embedder)
    reader = KnowledgeStore(knowledge_settings, fake_embedder)
    return Ingestor(writer, knowledge_settings), writer, reader


def _keyword_texts(store, query: str) -> list[str]:
    """Texts of the hits the keyword (BM25) side found for ``query``."""
    return [h.text for h in store.search(query, k=50, score_threshold=0.0) if h.keyword > 0]


def test_a_replace_with_as_many_chunks_reaches_the_other_stores_keyword_index(pair, tmp_path):
    ingestor, writer, reader = pair
    doc = tmp_path / "gates.txt"
    doc.write_text(OLD)
    before = ingestor.ingest([doc])[0]
    assert any("sluice" in t for t in _keyword_texts(reader, "sluice"))  # reader indexes it

    doc.write_text(NEW)
    after = ingestor.ingest([doc])[0]
    assert (before.status, after.status) == ("ingested", "replaced")
    assert after.chunks == before.chunks and writer.count() == before.chunks

    found = _keyword_texts(reader, "beehive")
    assert found and all("beehive" in t for t in found)
    assert _keyword_texts(reader, "sluice") == []


def test_a_deletion_reaches_the_other_stores_keyword_index(pair, tmp_path):
    ingestor, writer, reader = pair
    (tmp_path / "gates.txt").write_text(OLD)
    ingestor.ingest([tmp_path / "gates.txt"])
    assert _keyword_texts(reader, "sluice")
    writer.delete_document("gates.txt")
    assert _keyword_texts(reader, "sluice") == []
    assert reader.search("sluice gate", k=5, score_threshold=0.0) == []


def test_the_keyword_index_is_rebuilt_only_after_a_write(pair, tmp_path, monkeypatch):
    ingestor, writer, reader = pair
    (tmp_path / "gates.txt").write_text(OLD)
    ingestor.ingest([tmp_path / "gates.txt"])
    scans = []
    real = reader._metadatas
    monkeypatch.setattr(reader, "_metadatas", lambda where=None: scans.append(where) or real(where))

    for _ in range(3):
        reader.search("sluice", k=3)
    assert scans == [None]  # the first search builds; the next two read only the marker

    (tmp_path / "hives.txt").write_text(NEW)
    ingestor.ingest([tmp_path / "hives.txt"])
    reader.search("beehive", k=3)
    reader.search("beehive", k=3)
    assert scans == [None, None]


def test_own_writes_are_searchable_at_once(knowledge_ingestor, knowledge_store, tmp_path):
    (tmp_path / "gates.txt").write_text(OLD)
    knowledge_ingestor.ingest([tmp_path / "gates.txt"])
    assert _keyword_texts(knowledge_store, "sluice")
    (tmp_path / "gates.txt").write_text(NEW)
    knowledge_ingestor.ingest([tmp_path / "gates.txt"])
    assert _keyword_texts(knowledge_store, "beehive")
    assert _keyword_texts(knowledge_store, "sluice") == []


def test_the_marker_is_not_a_chunk(knowledge_ingestor, knowledge_store, tmp_path):
    (tmp_path / "gates.txt").write_text(OLD)
    result = knowledge_ingestor.ingest([tmp_path / "gates.txt"])[0]
    assert knowledge_store.count() == result.chunks
    assert [d.name for d in knowledge_store.list_documents()] == ["gates.txt"]
    assert knowledge_store.marker.read()


# --- the client's settings ------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "localhost:8000", "ftp://host:8000", "http://", "http://host:notaport",
    "http://host:8000/chroma", "http://host:99999",
])
def test_a_malformed_chroma_url_is_named(url):
    with pytest.raises(StrataError, match="ASSISTANT_CHROMA_URL") as err:
        server_address(url)
    assert repr(url) in str(err.value)


@pytest.mark.parametrize("url, expected", [
    ("http://10.0.0.5:9000", ("10.0.0.5", 9000, False)),
    ("https://chroma.example.org", ("chroma.example.org", 443, True)),
    ("http://chroma/", ("chroma", 8000, False)),
])
def test_chroma_url_parts(url, expected):
    assert server_address(url) == expected


@pytest.mark.parametrize("header, expected", [
    ("Authorization", {"Authorization": "Bearer s3cret"}),
    ("X-Chroma-Token", {"X-Chroma-Token": "s3cret"}),
])
def test_auth_header_follows_chromas_convention(header, expected):
    settings = Settings(_env_file=None, chroma_auth_token="s3cret", chroma_auth_header=header)
    assert auth_headers(settings) == expected
    assert auth_headers(Settings(_env_file=None)) == {}
    assert "s3cret" not in repr(settings)


def test_server_client_gets_headers_tenant_and_database(monkeypatch):
    import chromadb

    seen = {}

    class FakeClient:
        def __init__(self, **kwargs):
            seen.update(kwargs)

        def heartbeat(self):
            return 1

    monkeypatch.setattr(chromadb, "HttpClient", FakeClient)
    settings = Settings(
        _env_file=None, chroma_url="https://chroma.example.org:8443", chroma_auth_token="t",
        chroma_tenant="acme", chroma_database="support",
    )
    make_client(settings)
    assert (seen["host"], seen["port"], seen["ssl"]) == ("chroma.example.org", 8443, True)
    assert seen["headers"] == {"Authorization": "Bearer t"}
    assert (seen["tenant"], seen["database"]) == ("acme", "support")


def test_an_unreachable_server_is_a_clear_error_naming_the_url(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(StrataError, match="cannot use the Chroma server at " + url):
        make_client(Settings(_env_file=None, data_dir=tmp_path, chroma_url=url))


def test_another_processs_write_under_way_does_not_crowd_out_search(pair, tmp_path):
    """Its pending chunks are invisible, and this store cannot count them as its own."""
    from assistant.retrieval import generations as gen

    ingestor, writer, reader = pair
    (tmp_path / "gates.txt").write_text(OLD)
    ingestor.ingest([tmp_path / "gates.txt"])
    texts = ["the sluice gate opens at dawn"] * 60  # nearer the query than any real chunk
    marks = {**gen.pending_marks("0-other", len(texts), "add"), "writer": "elsewhere:1"}
    writer.collection.add(  # as another process writes them: straight into Chroma, pending
        ids=[f"other-{i}" for i in range(len(texts))], documents=texts,
        embeddings=writer.embedder.embed_documents(texts),
        metadatas=[{**marks, "source": "other.txt", "domain": "general"}] * len(texts),
    )
    reader.settings = reader.settings.model_copy(update={"keyword_weight": 0.0})  # dense alone
    hits = reader.search("the sluice gate opens at dawn", k=5, score_threshold=0.0)
    assert {h.source for h in hits} == {"gates.txt"} and len(hits) == writer.count() - 60
