"""Ingestion rules and the Chroma store, with the fast fake embedder."""

from __future__ import annotations

import pytest

from assistant.errors import StrataError
from assistant.retrieval.ingest import Ingestor, ensure_demo_knowledge, expand_paths
from assistant.retrieval.store import KnowledgeStore
from tests.retrieval_helpers import MARKDOWN, make_pdf, write_samples


def _snapshot(store):
    return store.count(), [d.to_dict() for d in store.list_documents()]


def test_every_type_is_ingested_with_provenance(knowledge_ingestor, knowledge_store, tmp_path):
    files = write_samples(tmp_path / "in")
    progress = []
    results = knowledge_ingestor.ingest(
        list(files.values()), domain="plant", progress=lambda *a: progress.append(a)
    )
    assert [r.status for r in results] == ["ingested"] * 6, [r.reason for r in results]
    assert progress[0] == (0, 6, "reading") and progress[-1][:2] == (6, 6)
    assert [p[0] for p in progress] == list(range(7))
    docs = {d.name: d for d in knowledge_store.list_documents()}
    assert set(docs) == {p.name for p in files.values()}
    pdf = docs["manual.pdf"]
    assert pdf.domain == "plant" and pdf.chunks == 2 and len(pdf.sha256) == 64
    assert pdf.size == files[".pdf"].stat().st_size and pdf.ingested_at.endswith("+00:00")
    assert sum(d.chunks for d in docs.values()) == knowledge_store.count()


def test_search_returns_hits_with_scores_and_provenance(
    knowledge_ingestor, knowledge_store, tmp_path
):
    knowledge_ingestor.ingest(list(write_samples(tmp_path / "in").values()), domain="plant")
    hits = knowledge_store.search("who is the duty warden", k=3)
    assert hits and hits[0].source == "handbook.docx"
    assert "Quillfeather" in hits[0].text and hits[0].section.startswith("Reservoir Handbook")
    assert all(0.0 <= h.score <= 1.0 for h in hits)
    pdf_hit = knowledge_store.search("ear defenders pump room", k=1)[0]
    assert pdf_hit.source == "manual.pdf" and pdf_hit.page == 1
    assert set(hits[0].to_dict()) >= {
        "id",
        "text",
        "source",
        "domain",
        "section",
        "page",
        "chunk",
        "score",
    }


def test_search_by_precomputed_vector_and_domain_filter(
    knowledge_ingestor, knowledge_store, fake_embedder, tmp_path
):
    files = write_samples(tmp_path / "in")
    knowledge_ingestor.ingest([files[".md"]], domain="garden")
    knowledge_ingestor.ingest([files[".csv"]], domain="water")
    vector = fake_embedder.embed_query("compost heap")
    calls = fake_embedder.query_calls
    hits = knowledge_store.search("compost heap", k=2, query_embedding=vector)
    assert fake_embedder.query_calls == calls  # the router's vector is reused, not recomputed
    assert hits[0].source == "garden guide.md"
    assert {h.domain for h in knowledge_store.search("compost heap", domain="water")} == {"water"}
    assert knowledge_store.search("compost", score_threshold=1.01) == []


def test_identical_file_is_a_duplicate(knowledge_ingestor, knowledge_store, tmp_path):
    path = tmp_path / "guide.md"
    path.write_text(MARKDOWN)
    assert knowledge_ingestor.ingest([path])[0].status == "ingested"
    before = _snapshot(knowledge_store)
    result = knowledge_ingestor.ingest([path])[0]
    assert result.status == "duplicate" and result.chunks == before[0]
    assert _snapshot(knowledge_store) == before


def test_changed_file_replaces_its_old_chunks(knowledge_ingestor, knowledge_store, tmp_path):
    path = tmp_path / "guide.md"
    path.write_text(MARKDOWN)
    knowledge_ingestor.ingest([path])
    path.write_text("# Garden Guide\n\n## Bees\n\nThe hive is checked every Sunday.\n")
    result = knowledge_ingestor.ingest([path])[0]
    assert result.status == "replaced" and result.chunks == 1
    assert knowledge_store.count() == 1
    assert "tomatoes" not in knowledge_store.search("water tomatoes", k=5)[0].text
    assert "hive" in knowledge_store.search("hive Sunday", k=1)[0].text


def test_delete_by_name(knowledge_ingestor, knowledge_store, tmp_path):
    files = write_samples(tmp_path / "in")
    knowledge_ingestor.ingest([files[".md"], files[".csv"]])
    info = knowledge_store.delete_document("zones.csv")
    assert info.name == "zones.csv" and info.chunks >= 1
    assert [d.name for d in knowledge_store.list_documents()] == ["garden guide.md"]
    assert all(
        h.source != "zones.csv" for h in knowledge_store.search("Brindle Hill reservoir", k=5)
    )
    with pytest.raises(StrataError, match="no document named"):
        knowledge_store.delete_document("zones.csv")


def test_store_persists_across_restart(knowledge_settings, fake_embedder, tmp_path):
    files = write_samples(tmp_path / "in")
    first = KnowledgeStore(knowledge_settings, fake_embedder)
    Ingestor(first, knowledge_settings).ingest(list(files.values()))
    before = _snapshot(first)
    del first
    second = KnowledgeStore(knowledge_settings, fake_embedder)
    assert _snapshot(second) == before
    assert second.search("Brindle Hill", k=1)[0].source == "zones.csv"  # keyword index rebuilt
    assert Ingestor(second, knowledge_settings).ingest([files[".md"]])[0].status == "duplicate"


def test_corrupt_file_mid_batch_leaves_nothing_partial(
    knowledge_ingestor, knowledge_store, tmp_path
):
    good_a = tmp_path / "a.md"
    good_a.write_text(MARKDOWN)
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4 truncated garbage")
    good_b = make_pdf(tmp_path / "b.pdf", ["Valve chamber keys are kept in the depot."])
    results = knowledge_ingestor.ingest([good_a, bad, good_b])
    assert [r.status for r in results] == ["ingested", "rejected", "ingested"]
    assert "PDF" in results[1].reason or "no extractable text" in results[1].reason
    assert {d.name for d in knowledge_store.list_documents()} == {"a.md", "b.pdf"}


def test_failure_while_writing_rolls_back_the_file(
    knowledge_ingestor, knowledge_store, fake_embedder, tmp_path
):
    ok = tmp_path / "ok.md"
    ok.write_text(MARKDOWN)
    knowledge_ingestor.ingest([ok])
    before = _snapshot(knowledge_store)
    doomed = tmp_path / "doomed.md"
    doomed.write_text("# Doomed\n\nEXPLODE " + "word " * 400)
    fake_embedder.fail_on = "EXPLODE"
    result = knowledge_ingestor.ingest([doomed])[0]
    assert result.status == "rejected" and "embedding backend failed" in result.reason
    assert _snapshot(knowledge_store) == before


def test_failed_chroma_write_deletes_partial_adds(
    knowledge_ingestor, knowledge_store, tmp_path, monkeypatch
):
    ok = tmp_path / "ok.md"
    ok.write_text(MARKDOWN)
    knowledge_ingestor.ingest([ok])
    before = _snapshot(knowledge_store)
    big = tmp_path / "big.txt"
    big.write_text("\n\n".join(f"Paragraph {i} about sluice gates and weirs." for i in range(400)))
    real_add, calls = knowledge_store.collection.add, []

    def flaky_add(**kwargs):  # the first batch lands, the second fails
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real_add(**kwargs)

    monkeypatch.setattr(knowledge_store, "_max_batch", lambda: 10)
    monkeypatch.setattr(knowledge_store.collection, "add", flaky_add)
    result = knowledge_ingestor.ingest([big])[0]
    assert result.status == "rejected" and "disk full" in result.reason
    assert _snapshot(knowledge_store) == before


def _reject(ingestor, path, name=None):
    before = _snapshot(ingestor.store)
    item = (path, name) if name is not None else path
    result = ingestor.ingest([item])[0]
    assert result.status == "rejected", result
    assert "\n" not in result.reason
    assert _snapshot(ingestor.store) == before
    return result.reason


def test_each_rejection_reason_leaves_store_unchanged(knowledge_ingestor, tmp_path):
    seed = tmp_path / "seed.md"
    seed.write_text(MARKDOWN)
    knowledge_ingestor.ingest([seed])
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert "empty file" in _reject(knowledge_ingestor, empty)
    fake_pdf = tmp_path / "fake.pdf"
    fake_pdf.write_text("I am plain text")
    assert "not a readable PDF" in _reject(knowledge_ingestor, fake_pdf)
    fake_docx = tmp_path / "fake.docx"
    fake_docx.write_text("not a zip")
    assert "not a readable .docx" in _reject(knowledge_ingestor, fake_docx)
    scan = make_pdf(tmp_path / "scan.pdf", [""])
    assert "no extractable text" in _reject(knowledge_ingestor, scan)
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ\x90\x00")
    assert "unsupported file type" in _reject(knowledge_ingestor, exe)
    huge = tmp_path / "huge.txt"
    huge.write_text("x" * (1024 * 1024 + 10))  # knowledge_settings: max_upload_mb=1
    assert "over the 1 MB limit" in _reject(knowledge_ingestor, huge)
    assert "path parts" in _reject(knowledge_ingestor, seed, "../x.md")
    assert "path parts" in _reject(knowledge_ingestor, seed, "a/b.md")
    assert "not found" in _reject(knowledge_ingestor, tmp_path / "missing.md")
    bad_domain = knowledge_ingestor.ingest([seed], domain="no spaces please")[0]
    assert bad_domain.status == "rejected" and "domain" in bad_domain.reason


def test_display_names_with_spaces_and_unicode(knowledge_ingestor, knowledge_store, tmp_path):
    upload = tmp_path / "tmpUPLOAD123"
    upload.write_text(MARKDOWN)
    result = knowledge_ingestor.ingest([(upload, "Guía del jardín 2024.md")])[0]
    assert result.status == "ingested"
    assert knowledge_store.document("Guía del jardín 2024.md").chunks == result.chunks


def test_expand_paths_walks_directories_and_skips_hidden(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.md").write_text("a")
    (tmp_path / "d" / "sub" / "b.txt").write_text("b")
    (tmp_path / "d" / ".hidden.md").write_text("h")
    names = [p.name for p in expand_paths([tmp_path / "d", tmp_path / "x.md"])]
    assert names == ["a.md", "b.txt", "x.md"]


def test_ensure_demo_knowledge_only_on_empty_store(knowledge_settings, knowledge_store):
    docs = knowledge_settings.knowledge_dir / "demo-domain" / "docs"
    docs.mkdir(parents=True)
    (docs / "guide.md").write_text(MARKDOWN)
    (knowledge_settings.knowledge_dir / "demo-domain" / "qa").mkdir()
    results = ensure_demo_knowledge(knowledge_settings, knowledge_store)
    assert [(r.name, r.status, r.domain) for r in results] == [
        ("guide.md", "ingested", "demo-domain")
    ]
    assert ensure_demo_knowledge(knowledge_settings, knowledge_store) == []  # not empty any more


def test_batch_embedding_failure_only_rejects_the_culprit(
    knowledge_ingestor, knowledge_store, fake_embedder, tmp_path
):
    good = tmp_path / "good.md"
    good.write_text(MARKDOWN)
    bad = tmp_path / "bad.md"
    bad.write_text("# Bad\n\nEXPLODE here")
    fake_embedder.fail_on = "EXPLODE"
    results = knowledge_ingestor.ingest([good, bad])
    assert [r.status for r in results] == ["ingested", "rejected"]
    assert [d.name for d in knowledge_store.list_documents()] == ["good.md"]


def test_domain_is_kept_unless_a_new_one_is_given(knowledge_ingestor, knowledge_store, tmp_path):
    path = tmp_path / "guide.md"
    path.write_text(MARKDOWN)
    knowledge_ingestor.ingest([path], domain="garden")
    assert knowledge_ingestor.ingest([path])[0].status == "duplicate"
    moved = knowledge_ingestor.ingest([path], domain="allotment")[0]
    assert moved.status == "replaced" and knowledge_store.document("guide.md").domain == "allotment"
    assert knowledge_store.count() == moved.chunks


def test_domain_filter_finds_a_small_domain_behind_a_big_one(
    knowledge_ingestor, knowledge_store, tmp_path
):
    big = tmp_path / "big.txt"
    big.write_text("\n\n".join(f"Paragraph {i} about sluice gates and weirs." for i in range(800)))
    small = tmp_path / "small.md"
    small.write_text("# Bees\n\nThe hive is checked every Sunday.")
    knowledge_ingestor.ingest([big], domain="water")
    knowledge_ingestor.ingest([small], domain="bees")
    assert knowledge_store.count() > 120  # more than the unfiltered wide search returns
    hits = knowledge_store.search("sluice gates and weirs", k=3, domain="bees")
    assert [h.source for h in hits] == ["small.md"]
    assert len(knowledge_store.search("sluice gates", k=3, domain="water")) == 3
