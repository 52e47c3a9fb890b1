"""What one file may cost to read, and how its bytes become text.

A file's size on disk says little about what it unpacks to: a small .docx (a zip) can
hold gigabytes of XML, a small PDF can declare a huge page count. So the readers check
the unpacked size, compression ratio and page count before parsing, and the text before
chunking (a .docx as it streams: ``docx_reader``), and
refuse with the reason instead of spending minutes embedding a bomb. Text files that
are not UTF-8 are still read, but the result says the encoding was a guess.
"""

from __future__ import annotations

import codecs
import zipfile
from dataclasses import dataclass

from assistant.errors import IngestError
from assistant.settings import Settings

# Word XML spends markup bytes on every run of text; this many bytes per character of the
# text cap covers heavily formatted documents, and the upload cap covers embedded images.
UNPACKED_BYTES_PER_CHAR = 20
# Word's XML compresses about ten times; repeated markup (a bomb) hundreds of times. Parts
# under a megabyte are left alone: small repetitive parts (styles) compress well and cost
# nothing to read.
MAX_COMPRESSION_RATIO = 100
RATIO_FLOOR_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Caps on one file; None = no cap (tests, benchmarks on trusted files)."""

    max_chars: int | None = None
    max_pages: int | None = None
    max_unpacked_bytes: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        upload = int(settings.max_upload_mb * 1024 * 1024)
        chars = settings.max_document_chars
        return cls(chars, settings.max_pdf_pages, chars * UNPACKED_BYTES_PER_CHAR + upload)

    def check_text(self, chars: int) -> None:
        if self.max_chars is not None and chars > self.max_chars:
            raise IngestError(
                f"more than {self.max_chars:,} characters of text (max_document_chars); "
                "split the document or raise the limit"
            )

    def check_pages(self, pages: int) -> None:
        if self.max_pages is not None and pages > self.max_pages:
            raise IngestError(
                f"{pages:,} pages is over the {self.max_pages:,} page limit (max_pdf_pages)"
            )

    def check_zip(self, archive: zipfile.ZipFile) -> None:
        """Refuse a zip-based file (.docx) before any entry is unpacked: by the total its
        entries declare, and by any large entry's compression ratio (XML a bomb repeats
        compresses hundreds of times; a real document's about ten)."""
        if self.max_unpacked_bytes is None:
            return
        entries = archive.infolist()
        unpacked = sum(info.file_size for info in entries)
        if unpacked > self.max_unpacked_bytes:
            raise IngestError(
                f"unpacks to {unpacked / 1048576:,.0f} MB, over the "
                f"{self.max_unpacked_bytes / 1048576:,.0f} MB allowed (max_document_chars); "
                "refused as a possible decompression bomb"
            )
        for info in entries:
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > RATIO_FLOOR_BYTES and ratio > MAX_COMPRESSION_RATIO:
                raise IngestError(
                    f"a part unpacks {ratio:,.0f} times its packed size (over "
                    f"{MAX_COMPRESSION_RATIO}); refused as a possible decompression bomb"
                )


_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def decode(raw: bytes) -> tuple[str, str]:
    """The text of ``raw`` and a note for the result when its encoding was guessed.

    UTF-8 (with or without a BOM) and UTF-16 with a BOM are certain. Anything else is
    read as Windows-1252 (Latin-1 where that fails), which never fails but may be wrong,
    so the note says so rather than indexing mojibake silently.
    """
    if raw.startswith(_UTF16_BOMS):
        try:
            return raw.decode("utf-16"), ""
        except UnicodeDecodeError:
            pass
    if b"\x00" in raw[:8192]:
        raise IngestError("not a text file (binary content)")
    try:
        return raw.decode("utf-8-sig"), ""
    except UnicodeDecodeError:
        pass
    try:
        text, encoding = raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:  # bytes cp1252 leaves undefined (0x81, 0x8d, ...)
        text, encoding = raw.decode("latin-1"), "latin-1"
    return text, f"encoding guessed: {encoding}, as the file is not valid UTF-8"
