"""What the ledger keeps of an answer when text storage is off (``ledger_store_text``).

Off means no word of the question or the answer in any column: the text columns are
emptied, the answer check's verdict keeps its kind and reason category ("quoted: not in
the documents", never the words it found), and an error keeps its exception's name
(a message may quote the question).
"""

from __future__ import annotations

import re
from typing import Any

TEXT_COLUMNS = ("question", "answer", "generated",  # the words themselves: never stored
                "standalone_query")  # a follow-up's query holds the earlier questions
NO_TEXT_ERROR = "error (text not stored)"
_ERROR_KIND = re.compile(r"[A-Za-z_][\w.]*(?=:)")  # "StrataError: ..." -> StrataError
_CATEGORY = re.compile(r"[a-z][a-z -]*")  # grounding.py's fixed reason categories


def verdict_kind(verdict: str | None) -> str | None:
    """``"quoted: not in the documents: Fees, Bills"`` -> ``"quoted: not in the documents"``.

    Verdicts read ``<kind>`` or ``<kind>: <category>[: <words of the answer>]``; a category
    that is not plain lower-case words is dropped too, in case its format ever changes.
    """
    if verdict is None:
        return None
    kind, _, rest = verdict.partition(": ")
    category = rest.partition(": ")[0]
    if not _CATEGORY.fullmatch(kind):
        return "checked"
    return f"{kind}: {category}" if _CATEGORY.fullmatch(category) else kind


def error_kind(error: str | None) -> str | None:
    """The exception's name of ``"Name: message"``; a bare message becomes NO_TEXT_ERROR."""
    if not error:
        return error
    match = _ERROR_KIND.match(error)
    return match.group(0) if match else NO_TEXT_ERROR


def without_text(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of an answer row with no word of its question or answer."""
    clean = {**row, **{name: None for name in TEXT_COLUMNS if name in row}}
    if "grounding" in clean:
        clean["grounding"] = verdict_kind(clean["grounding"])
    if "error" in clean:
        clean["error"] = error_kind(clean["error"])
    return clean
