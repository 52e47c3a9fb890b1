"""README.md and docs/: generated blocks rendered by one function, and kept up to date."""

from __future__ import annotations

import re
from pathlib import Path

from bench import readme

ROOT = Path(__file__).resolve().parents[2]


def test_replace_block_rewrites_between_its_markers_only():
    text = ("intro\n<!-- a -->\nold a\n<!-- /a -->\nmiddle\n<!-- b -->\nold b\n<!-- /b -->\n"
            "<!-- a -->\nsecond a\n<!-- /a -->\n")
    new = readme.replace_block(text, "a", "new \\1 a")  # a backslash is not a group reference
    assert new == ("intro\n<!-- a -->\nnew \\1 a\n<!-- /a -->\nmiddle\n<!-- b -->\nold b\n"
                   "<!-- /b -->\n<!-- a -->\nnew \\1 a\n<!-- /a -->\n")
    assert readme.replace_block(text, "c", "x") is None
    assert readme.replace_block("<!-- bench:models -->\n<!-- /bench:models -->", "bench:models",
                                "t\n\n\n") == "<!-- bench:models -->\nt\n<!-- /bench:models -->"


def test_render_fills_known_blocks_and_leaves_unknown_ones(tmp_path):
    text = "<!-- settings -->\n<!-- /settings -->\n<!-- nobody -->\nkept\n<!-- /nobody -->\n"
    new, done = readme.render(text, tmp_path)
    assert done == ["settings"]
    assert "| `ASSISTANT_DATA_DIR` | `data` |" in new and "kept" in new
    assert readme.render(new, tmp_path) == (new, [])  # rendering twice changes nothing


PROSE_ONLY = {"scaling.md"}  # how to deploy: commands, no measured figures
COMMAND = re.compile(r"python -m (bench|research)\.")  # a benchmark's or a study's command


def test_committed_readme_and_docs_are_what_their_commands_render():
    """A figure typed by hand inside a block, or a setting changed without re-rendering,
    fails here; `python -m bench.readme` fixes it."""
    assert readme.refresh(write=False) == {}, "run: python -m bench.readme"


def test_every_generated_block_is_known_and_names_its_command():
    for path in readme.documents():
        text = path.read_text()
        names = re.findall(r"<!-- ([\w:-]+) -->\n", text)
        assert names or path.name in PROSE_ONLY, f"{path.name} has no generated block"
        for name in names:
            assert name in readme.BLOCKS, f"{path.name}: unknown block {name}"
            body = text.split(f"<!-- {name} -->\n", 1)[1].split(f"<!-- /{name} -->", 1)[0]
            before = text.split(f"<!-- {name} -->", 1)[0][-600:]
            assert COMMAND.search(body) or COMMAND.search(before), \
                f"{path.name}: {name} names no command"


def test_readme_is_short_and_links_every_docs_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 150
    for page in ("evaluation", "benchmarks", "settings", "training"):
        assert f"(docs/{page}.md)" in text and (ROOT / "docs" / f"{page}.md").is_file()
    for link in re.findall(r"\]\(((?:docs|knowledge)/[^)#]+)\)", text):
        assert (ROOT / link).exists(), link


def test_setting_descriptions_hold_no_measured_figures():
    """Measured figures go stale in descriptions; they live in the generated docs."""
    from assistant.settings import Settings

    measured = re.compile(r"\d+(\.\d+)?\s?%|\b0\.\d{2}\b|\d\s?(ms|tok/s)\b|->\s*\d")
    for name, field in Settings.model_fields.items():
        match = measured.search(field.description or "")
        assert match is None, f"{name}: {match.group(0)!r} in its description"


def _helps(parser):
    """The --help text of ``parser`` and of every subcommand under it."""
    import argparse

    yield parser.prog, parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _helps(sub)


def test_no_help_text_speaks_of_issues(capsys):
    """Help text is for users: it says what a command does, not which issue asked for it."""
    import importlib

    import pytest

    from assistant.cli import build_parser
    from assistant.settings import Settings

    texts = dict(_helps(build_parser()))
    texts.update({f"ASSISTANT_{n.upper()}": f.description or ""
                  for n, f in Settings.model_fields.items()})
    for module in ("bench.run", "bench.readme", "research.synth_verdict",
                   "research.training_recipes", "research.synth_questions",
                   "research.dev_questions"):
        with pytest.raises(SystemExit):
            importlib.import_module(module).main(["--help"])
        texts[module] = capsys.readouterr().out
    assert len(texts) > 20
    wrong = {name: m.group(0) for name, text in texts.items()
             if (m := re.search(r"\bissues?\b.{0,30}|#\d+", text, re.I | re.S))}
    assert not wrong, wrong


def test_the_engine_comparison_judges_a_difference_against_paired_noise(tmp_path, monkeypatch):
    import csv
    import json

    def run(folder, engine, recalls):
        folder.mkdir()
        rows = [{"mode": "prompt", "question": f"q{i}", "recall": r, "out_of_scope": "False"}
                for i, r in enumerate(recalls)]
        with (folder / "results.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        mean = sum(recalls) / len(recalls)
        (folder / "summary.json").write_text(json.dumps({
            "engine": engine, "date": "2026-12-07T00:00:00", "n_in_scope": len(recalls),
            "questions_file": "q.jsonl",
            "per_mode": {"prompt": {"recall": mean, "in_scope": len(recalls)}}}))
        return folder / "summary.json"

    monkeypatch.setattr(readme, "EVAL_LOCAL", run(tmp_path / "local", "local", [1.0] * 20))
    monkeypatch.setattr(readme, "EVAL_LOCAL_SAME_CODE", tmp_path / "none" / "summary.json")
    monkeypatch.setattr(readme, "EVAL_LOCAL_FP32", tmp_path / "none" / "summary.json")
    monkeypatch.setattr(readme, "ROOT", tmp_path)
    monkeypatch.setattr(readme, "EVAL_SUMMARY", run(tmp_path / "new", "llamacpp",
                                                    [1.0] * 19 + [0.0]))
    text = readme._eval_engines(tmp_path)
    assert "| prompt | earlier | 1.00 (1.00) | 0.95 (0.95) | -0.05 | 0.10 |" in text  # 1 of 20
    assert "within the noise" in text
    monkeypatch.setattr(readme, "EVAL_SUMMARY", run(tmp_path / "worse", "llamacpp",
                                                    [1.0] * 10 + [0.0] * 10))
    assert "Beyond the noise: prompt (earlier)." in readme._eval_engines(tmp_path)


def test_runs_older_than_the_bundled_adapter_compare_only_the_modes_without_it(
        tmp_path, monkeypatch):
    import json

    def run(folder, date, modes):
        folder.mkdir(parents=True)
        rows = "mode,question,recall,out_of_scope\n" + "".join(
            f"{m},q{i},1.0,False\n" for m in modes for i in range(5))
        (folder / "results.csv").write_text(rows)
        (folder / "summary.json").write_text(json.dumps({
            "engine": "x", "date": date, "n_in_scope": 5, "questions_file": "q.jsonl",
            "adapter": "water", "per_mode": {m: {"recall": 1.0} for m in modes}}))
        return folder / "summary.json"

    (tmp_path / "adapters" / "water").mkdir(parents=True)
    (tmp_path / "adapters" / "water" / "card.json").write_text(
        json.dumps({"created_at": "2026-12-07T08:00:00+00:00"}))
    monkeypatch.setattr(readme, "ROOT", tmp_path)
    both = ["prompt", "adapter"]
    monkeypatch.setattr(readme, "EVAL_SUMMARY", run(tmp_path / "new", "2026-12-07T10:00:00+00:00",
                                                    both))
    monkeypatch.setattr(readme, "EVAL_LOCAL", run(tmp_path / "old", "2026-11-22T00:00:00+00:00",
                                                  both))
    monkeypatch.setattr(readme, "EVAL_LOCAL_SAME_CODE", run(
        tmp_path / "same", "2026-12-07T09:00:00+00:00", ["adapter"]))
    monkeypatch.setattr(readme, "EVAL_LOCAL_FP32", tmp_path / "none" / "summary.json")
    text = readme._eval_engines(tmp_path)
    assert "| prompt | earlier |" in text and "| adapter | earlier |" not in text
    assert "| adapter | same code |" in text
    assert ("Of the adapter `water` (trained 2026-12-07), the earlier run and the default "
            "engine's used different versions") in text

    # the precision table: one row per training precision, a dash where an engine was not
    # run or ran an older version of the bundled adapter
    monkeypatch.setattr(readme, "NF4_TRAINED", tmp_path / "nf4")
    run(tmp_path / "nf4" / "eval-llamacpp", "2026-11-22T00:00:00+00:00", ["adapter"])
    (tmp_path / "adapters" / "water" / "card.json").write_text(
        json.dumps({"created_at": "2026-12-07T08:00:00+00:00", "quant": "fp32"}))
    monkeypatch.setattr(readme, "EVAL_LOCAL_FP32", run(  # made before the adapter was
        tmp_path / "fp32", "2026-12-06T00:00:00+00:00", ["adapter"]))
    table = readme._adapter_precision(tmp_path)
    assert "| NF4 (QLoRA; the earlier demo adapter) | 1.00 | - | - |" in table
    assert "| fp32 (the bundled demo adapter) | 1.00 | 1.00 | - |" in table
