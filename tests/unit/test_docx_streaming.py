"""A small .docx that unpacks to a huge document.xml (issue 28, item 6): refused by its
compression ratio before any XML is parsed, and a large one that passes the checks is
read as a stream, in bounded memory."""

from __future__ import annotations

import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from assistant.errors import IngestError
from assistant.retrieval import docx_reader
from assistant.retrieval.limits import Limits
from assistant.retrieval.loaders import load_chunks
from assistant.settings import Settings
from tests.retrieval_helpers import make_docx

# One ingest's budget on a shared 2-core machine is ~300 MB; streamed, 20 MB of XML takes
# under half of it (86 MB measured; python-docx's whole tree took 309 MB for the same file).
PEAK_MB = 150


def big_docx(path: Path, xml_mb: int, paragraph: bytes) -> Path:
    """make_docx's file with ``xml_mb`` MB of ``paragraph`` in its body, written in pieces
    (the test never holds the XML whole)."""
    make_docx(path.with_suffix(".src.docx"))
    with zipfile.ZipFile(path.with_suffix(".src.docx")) as source:
        parts = {info.filename: source.read(info) for info in source.infolist()}
    xml = parts.pop("word/document.xml")
    start, end = xml.index(b"<w:body>") + len(b"<w:body>"), xml.index(b"</w:body>")
    block = paragraph * (1024 * 1024 // len(paragraph))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            target.writestr(name, data)
        with target.open("word/document.xml", "w", force_zip64=True) as out:
            out.write(xml[:start])
            for _ in range(xml_mb):
                out.write(block)
            out.write(xml[end:])
    return path


PARAGRAPH = (b'<w:p><w:pPr><w:spacing w:after="120"/></w:pPr><w:r><w:rPr><w:b/><w:sz w:val="22"/>'
             b"</w:rPr><w:t>All work and no play makes a dull bomb.</w:t></w:r></w:p>")


def test_a_small_docx_of_a_huge_xml_is_refused_before_parsing(tmp_path, monkeypatch):
    bomb = big_docx(tmp_path / "bomb.docx", 115, PARAGRAPH)  # the campaign's 115 MB
    assert bomb.stat().st_size < 2 * 1024 * 1024

    def never(*args, **kwargs):
        raise AssertionError("the bomb's XML was parsed")

    monkeypatch.setattr(docx_reader, "_body", never)
    started = time.perf_counter()
    with pytest.raises(IngestError, match="decompression bomb"):
        load_chunks(bomb, 1500, 150, limits=Limits.from_settings(Settings()))
    assert time.perf_counter() - started < 5


def test_text_over_the_cap_stops_the_reading_early(tmp_path):
    docx = big_docx(tmp_path / "long.docx", 2, PARAGRAPH)
    with pytest.raises(IngestError, match="max_document_chars"):
        load_chunks(docx, 1500, 150, limits=Limits(max_chars=10_000))


def test_a_large_docx_is_read_as_a_stream_in_bounded_memory(tmp_path):
    """Streamed, the peak resident memory of a fresh process reading 20 MB of XML stays
    under PEAK_MB (python-docx's whole tree went over it)."""
    docx = big_docx(tmp_path / "large.docx", 20, PARAGRAPH)
    # VmHWM, not ru_maxrss: Linux hands a child its parent's ru_maxrss (pytest's, here)
    script = ("import re, sys; from pathlib import Path;"
              "from assistant.retrieval.loaders import load_chunks;"
              "chunks = load_chunks(Path(sys.argv[1]), 1500, 150);"
              "peak = re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text());"
              "print(len(chunks), peak.group(1))")
    out = subprocess.run([sys.executable, "-c", script, str(docx)], capture_output=True,
                         text=True, timeout=240, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    chunks, peak_kb = map(int, out.stdout.split())
    assert chunks > 1000
    assert peak_kb / 1024 < PEAK_MB, f"peak {peak_kb / 1024:.0f} MB"


def test_headings_tables_and_nested_cells_read_as_before(tmp_path):
    chunks = load_chunks(make_docx(tmp_path / "handbook.docx"), 120, 0)
    text = "\n".join(c.page_content for c in chunks)
    assert "North weir | 3.2 m" in text and "Perpetua Quillfeather" in text
    sections = {c.metadata["section"] for c in chunks}
    assert "Reservoir Handbook > Inspection schedule > Spillway readings" in sections
