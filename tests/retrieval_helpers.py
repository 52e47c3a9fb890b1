"""Test helpers for the knowledge base: a fast fake embedder and real files of every type.

The fake embedder hashes words into a small vector, so unit tests exercise Chroma,
the loaders and the ingestion rules in seconds without loading torch.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

from langchain_core.embeddings import Embeddings


class HashEmbedder(Embeddings):
    """Bag of hashed words -> unit vector. Similar wording gives similar vectors."""

    model_name = "hash-embedder"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.query_calls = 0
        self.document_calls = 0
        self.fail_on: str | None = None  # embed_documents raises when a text contains this

    def _vector(self, text: str) -> list[float]:
        vec = [0.0] * self.dim
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            vec[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.document_calls += 1
        if self.fail_on and any(self.fail_on in t for t in texts):
            raise RuntimeError("embedding backend failed")
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.query_calls += 1
        return self._vector(text)


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(path: Path, pages: list[str]) -> Path:
    """A minimal valid PDF (Helvetica text, one content stream per page), written by hand."""
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        lines = " ".join(f"({_pdf_escape(line)}) Tj T*" for line in text.split("\n") if line)
        stream = f"BT /F1 11 Tf 14 TL 72 720 Td {lines} ET" if lines else ""
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    path.write_bytes(bytes(out))
    return path


def make_docx(path: Path) -> Path:
    """A Word file with a title, two headed sections, a paragraph each and a table."""
    import docx

    document = docx.Document()
    document.add_heading("Reservoir Handbook", 0)
    document.add_heading("Inspection schedule", 1)
    document.add_paragraph("Dams are inspected every 18 months by the panel engineer.")
    document.add_heading("Spillway readings", 2)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Gauge"
    table.cell(0, 1).text = "Level"
    table.cell(1, 0).text = "North weir"
    table.cell(1, 1).text = "3.2 m"
    document.add_heading("Contacts", 1)
    document.add_paragraph("The duty warden is Perpetua Quillfeather.")
    document.save(str(path))
    return path


HTML = """<!DOCTYPE html><html><head><title>Depot</title><style>p{color:red}</style></head>
<body><nav>Home | About</nav><h1>Depot guide</h1><p>The depot opens at 07:30.</p>
<h2>Parking</h2><p>There are <b>twelve</b> bays behind the gate.</p>
<table><tr><th>Day</th><th>Hours</th></tr><tr><td>Saturday</td><td>Closed</td></tr></table>
<ul><li><p>Visitors sign in at reception.</p></li></ul>
<script>var secret = "do not index";</script></body></html>
"""

MARKDOWN = """# Garden Guide

## Watering

Water tomatoes every morning in dry weather.

### Hosepipes

A trigger nozzle saves about a third of the water.

## Compost

Turn the heap every fortnight to keep it aerobic.
"""

PLAIN = """ANNUAL FILTER REPORT

----------------------
1. INTRODUCTION
----------------------

The filters were backwashed 212 times in 2024.

2. MEDIA
--------

Sand media was replaced at the Wexcombe works.
"""

CSV = "zone,reservoir,homes\nNorth,Kestle Top,412\nSouth,Brindle Hill,97\n"


def write_samples(folder: Path) -> dict[str, Path]:
    """One file of each supported type; returns {suffix: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        ".md": folder / "garden guide.md",
        ".txt": folder / "filter-report.txt",
        ".html": folder / "depot.html",
        ".csv": folder / "zones.csv",
    }
    files[".md"].write_text(MARKDOWN)
    files[".txt"].write_text(PLAIN)
    files[".html"].write_text(HTML)
    files[".csv"].write_text(CSV)
    files[".pdf"] = make_pdf(
        folder / "manual.pdf", ["Pump room safety\nWear ear defenders.", "Page two covers valves."]
    )
    files[".docx"] = make_docx(folder / "handbook.docx")
    return files
