"""A .docx read as a stream: paragraphs and tables of ``word/document.xml`` in order.

python-docx builds the whole XML tree in memory (a 115 MB document.xml took 2.7 GB), so
this reader walks the zip member with lxml's ``iterparse`` and frees each paragraph and
table once read: memory stays that of one paragraph or table plus the text so far. Before
any XML is parsed, ``Limits.check_zip`` refuses an archive by its unpacked size and its
compression ratio; while reading, the text is counted and refused past ``max_chars``.
Entities and DTDs are never resolved (a billion-laughs document stays small).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from assistant.errors import IngestError

if TYPE_CHECKING:
    from lxml.etree import _Element

    from assistant.retrieval.limits import Limits

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
DOCUMENT, STYLES = "word/document.xml", "word/styles.xml"
_HEADING = re.compile(r"heading ?(\d)", re.IGNORECASE)


def read_blocks(path: Path, limits: Limits) -> Iterator[tuple[int | None, str]]:
    """(heading level or None, text) per body paragraph; a table gives one block per row
    ("a | b") with level None. Title is level 0, "Heading N" level N."""
    with zipfile.ZipFile(path) as archive:
        limits.check_zip(archive)
        levels = heading_levels(archive)
        chars = 0
        with archive.open(DOCUMENT) as xml:
            for level, text in _body(xml, levels):
                chars += len(text)
                limits.check_text(chars)  # refused as soon as the text is over the cap
                yield level, text


def heading_levels(archive: zipfile.ZipFile) -> dict[str, int]:
    """{paragraph style id: heading level} from styles.xml (ids alone when it is absent)."""
    from lxml import etree

    levels: dict[str, int] = {}
    if STYLES not in archive.namelist():
        return levels
    with archive.open(STYLES) as xml:
        for _, style in etree.iterparse(xml, tag=f"{W}style", **_SAFE):
            style_id, name = style.get(f"{W}styleId") or "", style.find(f"{W}name")
            label = name.get(f"{W}val", "") if name is not None else style_id
            level = _level(label)
            if level is not None:
                levels[style_id] = level
            style.clear()
    return levels


def _level(label: str) -> int | None:
    if label.lower() == "title":
        return 0
    match = _HEADING.fullmatch(label.strip())
    return int(match.group(1)) if match else None


_SAFE = {"resolve_entities": False, "load_dtd": False, "no_network": True,
         "huge_tree": False, "remove_comments": True}


def _body(xml: IO[bytes], levels: dict[str, int]) -> Iterator[tuple[int | None, str]]:
    """Top-level paragraphs and the rows of top-level tables, each freed once read."""
    from lxml import etree

    depth = 0  # tables open around the current element
    for event, element in etree.iterparse(xml, events=("start", "end"),
                                          tag=(f"{W}p", f"{W}tbl", f"{W}tr"), **_SAFE):
        tag = element.tag
        if tag == f"{W}tbl":
            depth += 1 if event == "start" else -1
            if event == "end" and not depth:
                _free(element)
            continue
        if event == "start" or depth > 1 or (depth == 1 and tag != f"{W}tr"):
            continue  # inside a table: read with its row of the outermost table
        if tag == f"{W}tr":
            cells = [_text(cell).strip() for cell in element.iterchildren(f"{W}tc")]
            yield None, " | ".join(c for c in cells if c)
        elif depth == 0:
            style = element.find(f"{W}pPr/{W}pStyle")
            style_id = style.get(f"{W}val", "") if style is not None else ""
            yield levels.get(style_id, _level(style_id)), _text(element)
        _free(element)


def _text(element: _Element) -> str:
    """The visible text under ``element``: runs' text, tabs and line breaks."""
    parts = []
    for node in element.iter(f"{W}t", f"{W}tab", f"{W}br", f"{W}cr", f"{W}p"):
        tag = node.tag
        if tag == f"{W}t":
            parts.append(node.text or "")
        elif tag == f"{W}tab":
            parts.append("\t")
        elif tag != f"{W}p" or parts:  # a break, or a new paragraph within a cell
            parts.append("\n")
    return "".join(parts)


def _free(element: _Element) -> None:
    """Drop a read element and the siblings before it, so the tree never grows."""
    element.clear()
    parent = element.getparent()
    while parent is not None and element.getprevious() is not None:
        del parent[0]


def bad_docx(exc: Exception) -> IngestError:
    """Any failure to read the zip or its XML, as an ingest refusal."""
    if isinstance(exc, IngestError):
        return exc
    return IngestError(f"not a readable .docx ({type(exc).__name__}: "
                       f"{' '.join(str(exc).split())[:100]})")
