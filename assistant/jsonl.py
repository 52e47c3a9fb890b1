"""The one reader of JSON-lines files (questions, training pairs, routes): one JSON object
per line, blank lines skipped, and every refusal names the file and the line to fix."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.errors import StrataError

Where = Callable[[int], str]  # line number -> how a message names that line


def read_text(path: Path, error: type[StrataError] = StrataError, name: str | None = None) -> str:
    """The file's text (UTF-8, a byte-order mark dropped), or ``error`` saying why not."""
    label = name or str(path)
    if not path.is_file():
        raise error(f"{label}: no such file")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{label}: not UTF-8 text ({exc.reason})") from None


def parse_objects(text: str, where: Where,
                  error: type[StrataError] = StrataError) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of ``text``."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where(number)}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise error(f"{where(number)}: expected a JSON object")
        rows.append((number, row))
    return rows


def read_objects(path: Path | str, error: type[StrataError] = StrataError,
                 where: Where | None = None) -> list[tuple[int, dict[str, Any]]]:
    """``parse_objects`` of a file; by default lines are named ``path:number``."""
    path = Path(path)
    return parse_objects(read_text(path, error), where or (lambda n: f"{path}:{n}"), error)
