"""Files -> LangChain Documents (chunks), keeping where each chunk came from.

Each reader returns ``Section``s (a heading path and/or a page number plus text); the
splitter then cuts sections into chunks of ``chunk_size`` characters and prepends the
heading path, so a chunk read alone still says what it is about (a retrieval hit on
"Direct debit discount" text is useless to a 135M model without its heading).
Every failure is an ``IngestError`` with a one-line reason that names no server path.
Readers get a ``Source``: the file, the caps on what it may unpack to (``limits``), and
notes for the file's result (an encoding that had to be guessed).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from langchain_core.documents import Document

from assistant.errors import IngestError
from assistant.retrieval.limits import Limits, decode

SUPPORTED = {".txt", ".text", ".md", ".markdown", ".pdf", ".html", ".htm", ".docx", ".csv"}


@dataclass
class Section:
    """A run of text under one heading path (``A > B``) and/or on one PDF page."""

    text: str
    heading: str = ""
    page: int | None = None


class _Headings:
    """The current heading path: setting level n drops every deeper level."""

    def __init__(self) -> None:
        self._levels: dict[int, str] = {}

    def set(self, level: int, text: str) -> None:
        self._levels = {k: v for k, v in self._levels.items() if k < level}
        self._levels[level] = " ".join(text.split())

    @property
    def path(self) -> str:
        return " > ".join(v for _, v in sorted(self._levels.items()) if v)


@dataclass
class Source:
    """One file being read: where it is, its caps, and notes for its per-file result."""

    path: Path
    limits: Limits = field(default_factory=Limits)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """Decoded text; binary content is refused, a guessed encoding noted."""
        text, note = decode(self.path.read_bytes())
        if note and note not in self.notes:
            self.notes.append(note)
        return text


# --- readers ------------------------------------------------------------------


_RULE = re.compile(r"^\s*[-=_*#~]{3,}\s*$")


def _is_caps_heading(line: str) -> bool:
    stripped = line.strip()
    if not stripped or line[0].isspace():  # indented caps are table rows or list items
        return False
    letters = [c for c in stripped if c.isalpha()]
    return len(letters) >= 3 and len(stripped) <= 80 and all(c.isupper() for c in letters)


def read_plain(source: Source) -> list[Section]:
    """Plain text: short ALL-CAPS lines (report style) or underlined lines are headings."""
    lines = source.text().splitlines()
    sections: list[Section] = []
    body: list[str] = []
    title, heading, last_was_heading = "", "", False
    for i, line in enumerate(lines):
        isolated = i == 0 or not lines[i - 1].strip()
        underlined = isolated and i + 1 < len(lines) and line.strip() and _RULE.match(lines[i + 1])
        if _RULE.match(line):
            continue
        if _is_caps_heading(line) or (underlined and len(line.strip()) <= 80):
            if "".join(body).strip():
                sections.append(Section("\n".join(body), _join(title, heading)))
                body = []
            text = " ".join(line.split())
            numbered = re.match(r"(\d+|[A-Z])[.)]\s", text)  # "1. SCOPE" is a section, not a title
            if not sections and not numbered and not heading and (last_was_heading or not title):
                title = f"{title} > {text}" if title else text
            else:
                heading = f"{heading} > {text}" if last_was_heading and heading else text
            last_was_heading = True
            continue
        body.append(line)
        last_was_heading = last_was_heading and not line.strip()
    sections.append(Section("\n".join(body), _join(title, heading)))
    for section in sections:
        section.text = unwrap(section.text)
    return sections


_LIST_ITEM = re.compile(r"^\s*([-*•+]|\d{1,2}[.)]|[a-z][.)])\s")
_TABLE_ROW = re.compile(r"\S(\s{2,}|\t)\S|^\s*[-=+|]{3,}")
_FIELD = re.compile(r"^[A-Z][\w ]{0,30}:\s")  # "Approved by: ..." starts a line of its own


def unwrap(text: str) -> str:
    """Re-join the lines of hard-wrapped paragraphs (plain-text reports wrap at ~70
    characters), so a sentence reaches the splitter and the prompt whole, not as the
    fragments "laboratory, Brackenridge Analytical Laboratories, which has held our".

    A line continues the previous one unless either is blank or a table row, or the line
    starts a list item or a "Field: value" line, or the previous one ends a lead-in (":", ";").
    An indented line after a list item continues that item.
    """
    out: list[str] = []
    for line in text.splitlines():
        previous = out[-1] if out else ""
        continues = (
            previous.strip() and line.strip()
            and not _TABLE_ROW.search(previous) and not _TABLE_ROW.search(line)
            and not _LIST_ITEM.match(line) and not _FIELD.match(line)
            and not previous.rstrip().endswith((":", ";"))
        )
        if continues:
            out[-1] = f"{previous.rstrip()} {line.strip()}"
        else:
            out.append(line)
    return "\n".join(out)


def _join(*parts: str) -> str:
    return " > ".join(p for p in parts if p)


def read_markdown(source: Source) -> list[Section]:
    """Markdown split on #, ##, ### so every chunk knows its heading path."""
    from langchain_text_splitters import MarkdownHeaderTextSplitter

    levels = [("#", "h1"), ("##", "h2"), ("###", "h3"), ("####", "h4")]
    splitter = MarkdownHeaderTextSplitter(headers_to_split_on=levels, strip_headers=True)
    sections = []
    for doc in splitter.split_text(source.text()):
        heading = " > ".join(doc.metadata[k] for _, k in levels if doc.metadata.get(k))
        sections.append(Section(doc.page_content, heading))
    return sections


def read_pdf(source: Source) -> list[Section]:
    """One section per page, so citations can say which page; the page count (declared,
    so read without walking the pages) and the text so far are checked as it goes."""
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # we report broken files in one line
    try:
        reader = PdfReader(source.path, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError("encrypted PDF (remove the password first)")
        source.limits.check_pages(len(reader.pages))
        sections, chars = [], 0
        for number, page in enumerate(reader.pages, start=1):
            sections.append(Section(page.extract_text() or "", page=number))
            chars += len(sections[-1].text)
            source.limits.check_text(chars)
        return sections
    except IngestError:
        raise
    except Exception as exc:  # pypdf raises many types for broken files
        raise IngestError(f"not a readable PDF ({_short(exc)})") from exc


_BLOCKS = ["p", "li", "tr", "pre", "blockquote", "dt", "dd", "caption", "figcaption", "address"]
_HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]


def read_html(source: Source) -> list[Section]:
    """Headings (h1-h6) start sections; paragraphs, list items and table rows are lines."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(source.text(), "html.parser")
    for junk in soup(["script", "style", "noscript", "template", "nav", "head"]):
        junk.decompose()
    headings, sections = _Headings(), []
    lines: list[str] = []
    for el in soup.find_all(_HEADINGS + _BLOCKS):
        if el.name not in _HEADINGS and el.find_parent(_BLOCKS):
            continue  # nested block (a <p> in an <li>): its parent already has the text
        if el.name in _HEADINGS:
            sections.append(Section("\n".join(lines), headings.path))
            lines = []
            headings.set(int(el.name[1]), el.get_text(" ", strip=True))
        elif el.name == "tr":
            cells = [c.get_text(" ", strip=True) for c in el.find_all(["th", "td"])]
            lines.append(" | ".join(c for c in cells if c))
        else:
            lines.append(" ".join(el.get_text(" ", strip=True).split()))
    sections.append(Section("\n".join(lines), headings.path))
    if not any(s.text.strip() for s in sections):  # no block markup: take all the text
        sections = [Section(soup.get_text("\n", strip=True))]
    return sections


def read_docx(source: Source) -> list[Section]:
    """Paragraphs and tables in document order; Heading N / Title styles start sections.
    Streamed, after the zip's size and ratio checks (``docx_reader``): never a whole tree."""
    from assistant.retrieval.docx_reader import bad_docx, read_blocks

    headings, sections = _Headings(), []
    lines: list[str] = []
    try:
        for level, text in read_blocks(source.path, source.limits):
            if level is not None and text.strip():
                sections.append(Section("\n".join(lines), headings.path))
                lines = []
                headings.set(level, text)
            else:
                lines.append(text)
    except Exception as exc:  # not a zip, not a Word document, broken XML, over a cap
        raise bad_docx(exc) from exc
    sections.append(Section("\n".join(lines), headings.path))
    return sections


def read_csv(source: Source) -> list[Section]:
    """Each row becomes one 'column: value; ...' line, so a row read alone is complete."""
    text = source.text()
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        return []
    header = [
        " ".join(h.replace("_", " ").split()) or f"column {i + 1}" for i, h in enumerate(rows[0])
    ]
    title = " ".join(source.path.stem.replace("-", " ").replace("_", " ").split()).capitalize()
    lines = []
    for row in rows[1:]:
        pairs = [f"{h}: {v.strip()}" for h, v in zip(header, row) if v.strip()]
        lines.append("; ".join(pairs))
    return [Section("\n".join(lines), title)]


READERS = {
    ".txt": read_plain,
    ".text": read_plain,
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".pdf": read_pdf,
    ".html": read_html,
    ".htm": read_html,
    ".docx": read_docx,
    ".csv": read_csv,
}


# --- splitting ------------------------------------------------------------------
def _common_path(a: str, b: str) -> str:
    common = []
    for x, y in zip(a.split(" > "), b.split(" > ")):
        if x != y:
            break
        common.append(x)
    return " > ".join(common)


def _below(heading: str, parent: str) -> str:
    """The part of ``heading`` under ``parent`` ("A > B > C" under "A" is "B > C")."""
    return heading[len(parent) :].removeprefix(" > ") if parent else heading


def pack_sections(sections: list[Section], limit: int) -> list[Section]:
    """Merge neighbouring sections under a shared parent heading while they fit in ``limit``.

    Why: documents are full of 2-3 sentence subsections; one chunk each spreads a topic
    over many weak vectors, and top-k fills with fragments. Packed, a chunk is a whole
    topic (on the demo domain it raised hit@4 at the same chunk size: `pytest -s
    tests/integration/test_retrieval_quality.py -k hit_at_4`).
    """
    packed: list[Section] = []
    for section in sections:
        text = section.text.strip()
        if not text:
            continue
        if packed and packed[-1].page == section.page:
            prev = packed[-1]
            common = _common_path(prev.heading, section.heading)
            if common:
                head_a, head_b = _below(prev.heading, common), _below(section.heading, common)
                merged = (f"{head_a}\n" if head_a else "") + prev.text.strip()
                merged += "\n\n" + (f"{head_b}\n" if head_b else "") + text
                if len(common) + 2 + len(merged) <= limit:
                    packed[-1] = Section(merged, common, prev.page)
                    continue
        packed.append(Section(text, section.heading, section.page))
    return packed


def split_sections(sections: list[Section], chunk_size: int, chunk_overlap: int) -> list[Document]:
    """Chunks of at most ~chunk_size characters, each starting with its heading path."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    chunks: list[Document] = []
    for section in pack_sections(sections, chunk_size):
        body = re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+\n", "\n", section.text)).strip()
        if not body:
            continue
        prefix = f"{section.heading}\n\n" if section.heading else ""
        size = max(chunk_size - len(prefix), chunk_size // 2)
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=size,
            chunk_overlap=min(chunk_overlap, size // 2),
            separators=["\n\n", "\n", ". ", "; ", ", ", " ", ""],
            keep_separator="end",
        )
        for piece in splitter.split_text(body):
            metadata: dict = {"section": section.heading}
            if section.page is not None:
                metadata["page"] = section.page
            chunks.append(Document(page_content=prefix + piece.strip(), metadata=metadata))
    for index, chunk in enumerate(chunks):
        chunk.metadata["chunk"] = index
    return chunks


def load_chunks(
    path: Path,
    chunk_size: int,
    chunk_overlap: int,
    suffix: str = "",
    limits: Limits | None = None,
    notes: list[str] | None = None,
) -> list[Document]:
    """The chunks of one file; ``suffix`` overrides the type (for uploads with temp names).

    ``limits`` caps what the file may unpack to (none by default); ``notes`` receives
    remarks for the file's result, such as a guessed encoding.
    """
    kind = (suffix or path.suffix).lower()
    reader = READERS.get(kind)
    if reader is None:
        raise IngestError(f"unsupported file type {kind or '(none)'!r}; use {_supported()}")
    source = Source(path, limits or Limits(), notes if notes is not None else [])
    try:
        sections = reader(source)
    except IngestError:
        raise
    except (OSError, UnicodeError, csv.Error, ValueError) as exc:
        raise IngestError(f"unreadable {kind} file ({_short(exc)})") from exc
    source.limits.check_text(sum(len(section.text) for section in sections))
    chunks = split_sections(sections, chunk_size, chunk_overlap)
    if not chunks:
        raise IngestError("no extractable text (scanned PDF or empty document?)")
    return chunks


def _supported() -> str:
    return ", ".join(sorted(SUPPORTED))


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:120]
