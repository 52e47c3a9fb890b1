"""Loaders: every supported type gives chunks that keep their heading, page or row."""

from __future__ import annotations

import pytest

from assistant.errors import IngestError
from assistant.retrieval.lexical import LexicalIndex, tokens
from assistant.retrieval.loaders import Section, load_chunks, pack_sections, split_sections
from tests.retrieval_helpers import make_pdf, write_samples


@pytest.fixture
def samples(tmp_path):
    return write_samples(tmp_path / "samples")


def _text(chunks):
    return "\n".join(c.page_content for c in chunks)


def test_markdown_chunks_carry_their_heading_path(samples):
    chunks = load_chunks(samples[".md"], chunk_size=100, chunk_overlap=0)
    by_section = {c.metadata["section"]: c.page_content for c in chunks}
    assert "Garden Guide > Watering > Hosepipes" in by_section
    hose = by_section["Garden Guide > Watering > Hosepipes"]
    assert hose.startswith("Garden Guide > Watering > Hosepipes\n\n")  # self-contained chunk
    assert "trigger nozzle" in hose
    assert [c.metadata["chunk"] for c in chunks] == list(range(len(chunks)))


def test_small_sections_are_packed_under_their_parent(samples):
    chunks = load_chunks(samples[".md"], chunk_size=1000, chunk_overlap=0)
    assert len(chunks) == 1
    assert chunks[0].metadata["section"] == "Garden Guide"
    assert "Hosepipes\nA trigger nozzle" in chunks[0].page_content  # sub-heading kept inline


def test_pack_sections_respects_limit_and_pages():
    sections = [Section("a" * 50, "T > A"), Section("b" * 50, "T > B"), Section("c" * 50, "T > C")]
    packed = pack_sections(sections, limit=130)
    assert [s.heading for s in packed] == ["T", "T > C"]
    pages = [Section("x", page=1), Section("y", page=2)]
    assert len(pack_sections(pages, limit=1000)) == 2  # never merge across PDF pages


def test_pdf_keeps_page_numbers(samples):
    chunks = load_chunks(samples[".pdf"], chunk_size=300, chunk_overlap=0)
    assert [c.metadata["page"] for c in chunks] == [1, 2]
    assert "ear defenders" in chunks[0].page_content
    assert "valves" in chunks[1].page_content


def test_html_headings_tables_and_no_script(samples):
    chunks = load_chunks(samples[".html"], chunk_size=60, chunk_overlap=0)
    text = _text(chunks)
    assert "Saturday | Closed" in text
    assert "twelve bays" in text
    assert "do not index" not in text and "Home | About" not in text
    assert text.count("Visitors sign in") == 1  # <p> inside <li> not doubled
    assert any(c.metadata["section"] == "Depot guide > Parking" for c in chunks)


def test_docx_headings_and_tables(samples):
    chunks = load_chunks(samples[".docx"], chunk_size=120, chunk_overlap=0)
    sections = {c.metadata["section"] for c in chunks}
    assert "Reservoir Handbook > Inspection schedule" in sections
    assert "North weir | 3.2 m" in _text(chunks)
    assert "Perpetua Quillfeather" in _text(chunks)


def test_csv_rows_become_column_value_lines(samples):
    chunks = load_chunks(samples[".csv"], chunk_size=300, chunk_overlap=0)
    assert "zone: South; reservoir: Brindle Hill; homes: 97" in _text(chunks)
    assert chunks[0].metadata["section"] == "Zones"


def test_plain_text_caps_headings(samples):
    chunks = load_chunks(samples[".txt"], chunk_size=70, chunk_overlap=0)
    sections = [c.metadata["section"] for c in chunks]
    assert "ANNUAL FILTER REPORT > 1. INTRODUCTION" in sections
    assert "ANNUAL FILTER REPORT > 2. MEDIA" in sections


def test_long_section_is_split_with_overlap():
    body = " ".join(f"Sentence number {i} about pumps." for i in range(60))
    chunks = split_sections([Section(body, "Pumps")], chunk_size=200, chunk_overlap=40)
    assert len(chunks) > 5
    assert all(len(c.page_content) <= 200 + 10 for c in chunks)
    assert all(c.page_content.startswith("Pumps\n\n") for c in chunks)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("fake.pdf", b"this is not a pdf at all", "not a readable PDF"),
        ("fake.docx", b"not a zip file", "not a readable .docx"),
        ("binary.txt", b"\x00\x01\x02garbage", "binary"),
        ("data.xyz", b"hello", "unsupported file type"),
        ("blank.md", b"   \n\n  \n", "no extractable text"),
    ],
)
def test_bad_files_raise_one_line_reasons(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(IngestError, match=reason) as info:
        load_chunks(path, 300, 30)
    assert "\n" not in str(info.value)


def test_pdf_without_text_is_rejected(tmp_path):
    path = make_pdf(tmp_path / "scan.pdf", [""])
    with pytest.raises(IngestError, match="no extractable text"):
        load_chunks(path, 300, 30)


def test_lexical_index_ranks_rare_terms_and_filters_domain():
    index = LexicalIndex()
    index.add(
        [
            ("a", "Form WC-12 goes to the connections team", "water"),
            ("b", "Payments are due in 19 days", "water"),
            ("c", "Form WC-12 is also used elsewhere", "other"),
        ]
    )
    assert index.search("where do I send WC-12?", 3)[0][0] in {"a", "c"}
    assert [i for i, _ in index.search("WC-12", 3, domain="water")] == ["a"]
    assert index.search("zebra", 3) == []
    index.remove(["a"])
    assert len(index) == 2 and index.search("connections", 3) == []
    assert tokens("Paying payments") == ["pay", "payment"]


def test_hard_wrapped_plain_text_is_unwrapped_but_lists_tables_and_fields_are_kept(tmp_path):
    from assistant.retrieval.loaders import unwrap

    text = ("Prepared by: Dr Ann Lee, Manager\nApproved by: the Board\n\n"
            "All samples are analysed by an accredited laboratory,\nBrackenridge Labs, which has"
            " held our\ncontract since 2018.\n\nSources:\n  - Skelby Reservoir, which gave\n"
            "    64% of the water; and\n  - the boreholes, 36%.\n\n"
            "  Parameter      Value\n  -------------  -----\n  Nitrate        18.4 mg/L\n")
    assert unwrap(text).splitlines() == [
        "Prepared by: Dr Ann Lee, Manager", "Approved by: the Board", "",
        "All samples are analysed by an accredited laboratory, Brackenridge Labs, which has "
        "held our contract since 2018.", "", "Sources:",
        "  - Skelby Reservoir, which gave 64% of the water; and", "  - the boreholes, 36%.", "",
        "  Parameter      Value", "  -------------  -----", "  Nitrate        18.4 mg/L"]
