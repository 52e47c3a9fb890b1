"""knowledge/check_domain.py: checks any domain folder against thresholds given as arguments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from knowledge import check_domain

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "knowledge" / "harrowgate-water"
# what the tiny domain below holds: passes with these, fails the demo's defaults
SMALL = ["--min-docs", "2", "--min-words", "10", "--formats", "md,html", "--min-facts", "2",
         "--min-test-facts", "2", "--min-out-of-scope", "1", "--min-phrasings", "2",
         "--min-domain-routes", "2", "--min-general-routes", "1", "--profile-examples", "2"]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def tiny_domain(root: Path) -> Path:
    domain = root / "otters"
    (domain / "docs").mkdir(parents=True)
    (domain / "qa").mkdir()
    (domain / "docs" / "otters.md").write_text(
        "# Otters\n\n## Food\n\nThe otters of the Wexe eat trout and eels.\n")
    (domain / "docs" / "holts.html").write_text(
        "<html><body><h1>Holts</h1><h2>Where</h2><p>Otters sleep in holts under alder roots."
        "</p><table><tr><td>holts</td><td>12</td></tr></table></body></html>\n")

    def fact(fid, question, answer, word, source):
        return {"question": question, "answer": answer, "must_contain": [word],
                "source": source, "fact_id": fid}

    _jsonl(domain / "qa" / "train.jsonl", [
        fact("food", "What do otters eat?", "They eat trout.", "trout", "otters.md"),
        fact("food", "Which fish do the otters hunt?", "Trout.", "trout", "otters.md"),
        fact("home", "Where do otters sleep?", "In holts under alder roots.", "alder",
             "holts.html"),
        fact("home", "What is an otter's bed?", "A holt among alder roots.", "alder", "holts.html"),
    ])
    _jsonl(domain / "qa" / "test.jsonl", [
        fact("food", "Name the otters' prey in the river.", "Trout.", "trout", "otters.md"),
        fact("home", "Under which tree are holts dug?", "Alder.", "alder", "holts.html"),
        {"question": "What do badgers eat?", "answer": "The documents do not say.",
         "must_contain": [], "source": None, "fact_id": "oos-1", "out_of_scope": True},
    ])
    _jsonl(domain / "qa" / "routes.jsonl", [
        {"question": "Do otters eat eels?", "route": "domain"},
        {"question": "Where is a holt?", "route": "domain"},
        {"question": "What is 2 + 2?", "route": "general"},
    ])
    (domain / "profile.json").write_text(json.dumps(
        {"name": "otters", "description": "Otters of the Wexe.",
         "examples": ["What do otters eat?", "Where do otters sleep?"]}))
    return domain


def test_the_demo_domain_passes_with_the_default_thresholds(capsys):
    assert check_domain.main([str(DEMO)]) == 0
    out = capsys.readouterr().out
    assert "RESULT: OK" in out and "routes.jsonl: 40 lines" in out


def test_a_tiny_domain_passes_with_thresholds_to_its_size_and_fails_the_demos(tmp_path, capsys):
    domain = tiny_domain(tmp_path)
    assert check_domain.main([str(domain), *SMALL]) == 0, capsys.readouterr().out
    assert check_domain.main([str(domain)]) == 1
    errors = check_domain.check(domain).errors
    assert "only 2 documents (need >= 9)" in errors
    assert "no .csv document" in errors
    assert "train fact food: only 2 phrasings (need 3)" in errors


def test_a_broken_domain_names_each_problem(tmp_path):
    domain = tiny_domain(tmp_path)
    train = domain / "qa" / "train.jsonl"
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    rows[0]["must_contain"] = ["salmon"]  # in no document, and not in its answer
    _jsonl(train, rows)
    with train.open("a") as f:
        f.write("{not json\n")
    test = domain / "qa" / "test.jsonl"
    test.write_text(test.read_text().replace("Name the otters' prey in the river.",
                                             "What do otters eat?"))
    (domain / "docs" / "holts.html").write_text("<h1>Holts</h1><h2>x</h2><p>alder<table>\n")
    (domain / "profile.json").write_text(json.dumps({"name": "badgers", "examples": []}))
    limits = check_domain.Limits(min_docs=2, min_words=10, formats=("md",), min_facts=2,
                                 min_test_facts=2, min_out_of_scope=1, min_phrasings=2,
                                 min_domain_routes=2, min_general_routes=1, profile_examples=2)
    errors = "\n".join(check_domain.check(domain, limits).errors)
    assert "train.jsonl:1: must_contain 'salmon' not found in otters.md" in errors
    assert "train.jsonl:1: must_contain 'salmon' not in its own answer" in errors
    assert "train.jsonl:5: invalid JSON" in errors
    assert "test.jsonl:1: question identical to a train question" in errors
    assert "holts.html: unclosed HTML tags" in errors
    assert "profile.json: name 'badgers' != directory name" in errors
    assert "profile.json: missing description" in errors


def test_a_missing_folder_is_an_error_not_a_crash(tmp_path, capsys):
    assert check_domain.main([str(tmp_path / "nowhere")]) == 1
    assert "missing docs dir" in capsys.readouterr().out


def test_it_runs_as_a_module_with_help_and_checks_nothing_at_import():
    out = subprocess.run([sys.executable, "-m", "knowledge.check_domain", "--help"], cwd=ROOT,
                         check=False, capture_output=True, text=True)
    assert out.returncode == 0 and "--min-facts N" in out.stdout
    assert "default: 60" in out.stdout
    with pytest.raises(SystemExit) as exit_:
        check_domain.main(["--min-facts", "many"])
    assert exit_.value.code == 2
