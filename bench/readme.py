"""Render bench/results/*.json into the README between markers, so no figure is typed by hand.

A README section ``<!-- bench:NAME -->`` ... ``<!-- /bench:NAME -->`` is replaced by the
Markdown that ``bench_NAME.markdown(result)`` returns.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def refresh(readme: Path = ROOT / "README.md") -> list[str]:
    text = readme.read_text()
    done = []
    for path in sorted((ROOT / "bench" / "results").glob("*.json")):
        name = path.stem
        pattern = re.compile(rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", re.S)
        if not pattern.search(text):
            continue
        module = importlib.import_module(f"bench.bench_{name}")
        result = json.loads(path.read_text())
        meta = result.get("_meta", {})
        body = module.markdown(result).rstrip() + (
            f"\n\nMeasured by `{meta.get('command')}` on {meta.get('date')} "
            f"({meta.get('machine', {}).get('cores')} cores, torch {meta.get('machine', {}).get('torch')}).\n"
        )
        text = pattern.sub(lambda m: m.group(1) + body + m.group(2), text)
        done.append(name)
    readme.write_text(text)
    return done


if __name__ == "__main__":
    print("refreshed:", refresh())
