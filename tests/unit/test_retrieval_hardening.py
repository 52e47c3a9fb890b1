"""What a bad-input and crash campaign broke in ingestion (issue 15), kept fixed: links out
of the folder, decompression bombs, server paths in messages, guessed encodings."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from assistant.retrieval.ingest import Ingestor, hide_paths
from assistant.retrieval.loaders import READERS, load_chunks
from tests.retrieval_helpers import MARKDOWN, make_docx, make_pdf


def _ingestor(store, settings, **changes):
    return Ingestor(store, settings.model_copy(update=changes))


def _searchable(store, text):
    return any(text in h.text for h in store.search(text, k=20, score_threshold=0.0))


# --- links -----------------------------------------------------------------------------
def test_a_link_out_of_the_folder_is_refused_and_one_inside_is_read(
    knowledge_ingestor, knowledge_store, tmp_path
):
    secret = tmp_path / "elsewhere" / "passwd.txt"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:Secret Operator:/root:/bin/bash\n")
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "guide.md").write_text(MARKDOWN)
    (folder / "sub" / "leak.txt").symlink_to(secret)
    (folder / "sub" / "same-guide.md").symlink_to(folder / "guide.md")  # inside: fine
    results = {r.name: r for r in knowledge_ingestor.ingest_paths([folder])}
    assert results["guide.md"].status == "ingested"
    assert results["same-guide.md"].status == "ingested"
    leak = results["leak.txt"]
    assert leak.status == "rejected" and "outside the folder" in leak.reason
    assert str(secret.parent) not in leak.line()
    assert not _searchable(knowledge_store, "Secret Operator")


def test_a_link_given_directly_to_a_file_elsewhere_is_refused(knowledge_ingestor, tmp_path):
    secret = tmp_path / "private" / "notes.txt"
    secret.parent.mkdir()
    secret.write_text("Private notes that must stay on the server.")
    link = tmp_path / "public" / "notes.txt"
    link.parent.mkdir()
    link.symlink_to(secret)
    for results in (knowledge_ingestor.ingest([link]), knowledge_ingestor.ingest_paths([link])):
        assert results[0].status == "rejected" and "outside the folder" in results[0].reason
    assert knowledge_ingestor.store.count() == 0


# --- decompression bombs ------------------------------------------------------------------
def _bomb_docx(path: Path, megabytes: int) -> Path:
    """A real .docx whose document.xml is replaced by megabytes of repetitive XML."""
    make_docx(path)
    with zipfile.ZipFile(path) as source:
        parts = {info.filename: source.read(info) for info in source.infolist()}
    run = b"<w:p><w:r><w:t>All work and no play makes a dull bomb.</w:t></w:r></w:p>"
    body = run * (megabytes * 1024 * 1024 // len(run))
    xml = parts["word/document.xml"]
    start, end = xml.index(b"<w:body>") + len(b"<w:body>"), xml.index(b"</w:body>")
    parts["word/document.xml"] = xml[:start] + body + xml[end:]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            target.writestr(name, data)
    path.write_bytes(buffer.getvalue())
    return path


def test_a_docx_bomb_is_refused_before_it_is_parsed(
    knowledge_store, knowledge_settings, tmp_path, monkeypatch
):
    import docx

    bomb = _bomb_docx(tmp_path / "bomb.docx", megabytes=4)
    assert bomb.stat().st_size < 100 * 1024  # small on disk, large unpacked

    def never(*args, **kwargs):
        raise AssertionError("the bomb was handed to the parser")

    monkeypatch.setattr(docx, "Document", never)
    ingestor = _ingestor(knowledge_store, knowledge_settings, max_document_chars=20_000)
    result = ingestor.ingest([bomb])[0]
    assert result.status == "rejected", result.line()
    assert "decompression bomb" in result.reason and "max_document_chars" in result.reason
    assert knowledge_store.count() == 0


def test_text_over_the_cap_is_refused_with_its_reason(knowledge_store, knowledge_settings,
                                                      tmp_path):
    long_text = tmp_path / "long.txt"
    long_text.write_text("The sluice gate opens at dawn. " * 200)  # ~6k characters
    pdf = make_pdf(tmp_path / "long.pdf", ["Valve keys are kept in the depot. " * 40] * 3)
    ingestor = _ingestor(knowledge_store, knowledge_settings, max_document_chars=2000)
    for result in ingestor.ingest([long_text, pdf]):
        assert result.status == "rejected" and "max_document_chars" in result.reason
    assert knowledge_store.count() == 0


def test_a_pdf_with_too_many_pages_is_refused(knowledge_store, knowledge_settings, tmp_path):
    pdf = make_pdf(tmp_path / "pages.pdf", [f"Page {n} of the manual." for n in range(4)])
    ingestor = _ingestor(knowledge_store, knowledge_settings, max_pdf_pages=3)
    result = ingestor.ingest([pdf])[0]
    assert result.status == "rejected" and "max_pdf_pages" in result.reason
    assert _ingestor(knowledge_store, knowledge_settings, max_pdf_pages=4).ingest([pdf])[0].ok


# --- messages name the file as the user named it -------------------------------------------
def test_a_corrupt_docx_is_reported_by_its_name_not_its_server_path(knowledge_ingestor, tmp_path):
    cache = tmp_path / "gradio" / "upload-cache" / "0257d5e1f0c3a9b4"
    cache.mkdir(parents=True)
    upload = cache / "random.docx"
    upload.write_bytes(bytes(range(256)) * 8)
    for item in ([upload], [(upload, "random.docx")]):
        result = knowledge_ingestor.ingest(item)[0]
        assert result.status == "rejected" and "not a readable .docx" in result.reason
        shown = result.line() + json.dumps(result.to_dict())
        assert "random.docx" in result.line()
        assert str(tmp_path) not in shown and "upload-cache" not in shown


def test_a_library_error_naming_the_path_is_cleaned(knowledge_ingestor, tmp_path, monkeypatch):
    folder = tmp_path / "srv" / "uploads"
    folder.mkdir(parents=True)
    upload = folder / "tmp81c2.md"
    upload.write_text(MARKDOWN)

    def broken(source):
        raise RuntimeError(f"cannot map {source.path} (folder {source.path.parent})")

    monkeypatch.setitem(READERS, ".md", broken)
    result = knowledge_ingestor.ingest([(upload, "My notes.md")])[0]
    assert result.status == "rejected" and "My notes.md" in result.reason
    assert str(folder) not in result.reason and "srv" not in result.reason


def test_hide_paths_replaces_every_spelling_of_the_path():
    path = Path("/tmp/gradio/0257d5/random.docx")
    text = "Package not found at '/tmp/gradio/0257d5/random.docx' in /tmp/gradio/0257d5"
    assert hide_paths(text, path, "random.docx") == "Package not found at 'random.docx' in (folder)"


# --- encodings -----------------------------------------------------------------------------
def test_invalid_utf8_says_the_encoding_was_guessed(knowledge_ingestor, tmp_path):
    latin = tmp_path / "codes.txt"
    latin.write_bytes(b"Product KX-\xff\xfe-77 ships in May from the Wexcombe depot.\n")
    utf8 = tmp_path / "plain.txt"
    utf8.write_text("Product KX-77 ships in June from the Brindle depot.\n", encoding="utf-8")
    guessed, sure = knowledge_ingestor.ingest([latin, utf8])
    assert guessed.status == "ingested" and "encoding guessed: cp1252" in guessed.note
    assert "encoding guessed" in guessed.line() and guessed.to_dict()["note"] == guessed.note
    assert sure.status == "ingested" and sure.note == ""


def test_utf16_with_a_byte_order_mark_is_read_not_refused(tmp_path):
    path = tmp_path / "notepad.txt"
    path.write_bytes("Die Schleuse öffnet um sieben Uhr.".encode("utf-16"))
    notes: list[str] = []
    chunks = load_chunks(path, 300, 30, notes=notes)
    assert "Schleuse öffnet" in chunks[0].page_content and notes == []
