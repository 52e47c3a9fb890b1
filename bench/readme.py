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
        machine = meta.get("machine", {})
        load = machine.get("load_average_1m")
        load_text = f", load average {load} when it finished" if load is not None else ""
        body = module.markdown(result).rstrip() + (
            f"\n\nMeasured by `{meta.get('command')}{' --quick' if meta.get('quick') else ''}` "
            f"on {meta.get('date')} ({machine.get('cores')} cores, torch {machine.get('torch')}"
            f"{load_text}).\n"
        )
        if meta.get("note"):
            body += f"Note: {meta['note']}.\n"
        text = pattern.sub(lambda m: m.group(1) + body + m.group(2), text)
        done.append(name)
    text, settings_done = _settings_table(text)
    text, eval_done = _eval_section(text)
    text, training_done = _training_section(text)
    readme.write_text(text)
    return done + settings_done + eval_done + training_done


def _training_section(text: str) -> tuple[str, list[str]]:
    """The recipe table from `python -m bench.training_recipes` runs."""
    results_file = ROOT / "bench" / "results" / "training_recipes.json"
    pattern = re.compile(r"(<!-- training -->\n).*?(<!-- /training -->)", re.S)
    if not results_file.is_file() or not pattern.search(text):
        return text, []
    from bench.training_recipes import markdown

    body = markdown(json.loads(results_file.read_text())).rstrip() + "\n"
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text), ["training"]


def _eval_section(text: str) -> tuple[str, list[str]]:
    """The evaluation table from `assistant eval ... --out bench/results/eval`."""
    summary_file = ROOT / "bench" / "results" / "eval" / "summary.json"
    pattern = re.compile(r"(<!-- eval -->\n).*?(<!-- /eval -->)", re.S)
    if not summary_file.is_file() or not pattern.search(text):
        return text, []
    from assistant.evaluation.report import readme_markdown

    from assistant.evaluation.report import PLOTS

    body = readme_markdown(json.loads(summary_file.read_text())).rstrip() + "\n"
    images = [f"![{title}]({(summary_file.parent / f'{name}.png').relative_to(ROOT)})"
              for name, title in PLOTS.items() if (summary_file.parent / f"{name}.png").is_file()]
    if images:
        body += "\n" + "\n".join(images) + "\n"
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text), ["eval"]


def _settings_table(text: str) -> tuple[str, list[str]]:
    """The settings reference, generated from the Settings class itself."""
    pattern = re.compile(r"(<!-- settings -->\n).*?(<!-- /settings -->)", re.S)
    if not pattern.search(text):
        return text, []
    from assistant.settings import Settings

    rows = ["| variable | default | what it is for |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(none)" if default is None else str(default).replace("|", "\\|")
        why = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `ASSISTANT_{name.upper()}` | `{shown}` | {why} |")
    body = "\n".join(rows) + "\n"
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text), ["settings"]


if __name__ == "__main__":
    print("refreshed:", refresh())
