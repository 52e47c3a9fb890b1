"""One-off studies: each script asks one question, writes its answer into research/results/,
and names the command that wrote it inside the file (research/README.md lists them).

The scripts' shared ending lives here (a module of its own would be taken for a script)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def emit(result: Mapping[str, Any], out: Path | None) -> None:
    """Print a script's result as JSON and, given ``--out``, write the same text there."""
    text = json.dumps(result, indent=1)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
