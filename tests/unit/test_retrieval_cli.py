"""`assistant ingest | docs | search`: one JSON object with --json, exit codes, human lines."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from assistant import cli
from tests.retrieval_helpers import MARKDOWN, write_samples


@pytest.fixture
def run_cli(knowledge_store, knowledge_ingestor, monkeypatch, capsys):
    parts = SimpleNamespace(store=knowledge_store, ingestor=knowledge_ingestor)
    monkeypatch.setattr("assistant.commands.knowledge._services", lambda: parts)

    def run(*argv):
        code = cli.main(list(argv))
        out = capsys.readouterr().out
        return code, out

    return run


def test_ingest_directory_json_and_exit_codes(run_cli, tmp_path):
    folder = tmp_path / "docs"
    write_samples(folder)
    (folder / "broken.pdf").write_bytes(b"nope")
    code, out = run_cli("ingest", str(folder), "--domain", "plant", "--json")
    result = json.loads(out)  # exactly one JSON object on stdout
    assert code == 0
    statuses = {r["name"]: r["status"] for r in result["results"]}
    assert statuses["broken.pdf"] == "rejected" and statuses["depot.html"] == "ingested"
    assert result["counts"] == {"ingested": 6, "rejected": 1}

    code, out = run_cli("ingest", str(folder / "broken.pdf"))
    assert code == 1 and "rejected" in out and "broken.pdf" in out

    code, out = run_cli("ingest", str(folder / "zones.csv"))
    assert code == 0 and out.startswith("duplicate")


def test_docs_list_delete_and_search(run_cli, tmp_path):
    path = tmp_path / "garden guide.md"
    path.write_text(MARKDOWN)
    run_cli("ingest", str(path), "--domain", "garden")

    code, out = run_cli("docs", "list", "--json")
    docs = json.loads(out)["documents"]
    assert code == 0 and [(d["name"], d["domain"]) for d in docs] == [("garden guide.md", "garden")]
    code, out = run_cli("docs", "list")
    assert "garden guide.md" in out and "1 documents" in out

    code, out = run_cli("search", "compost heap", "-k", "2", "--json")
    hits = json.loads(out)["hits"]
    assert code == 0 and hits[0]["source"] == "garden guide.md" and 0 <= hits[0]["score"] <= 1
    code, out = run_cli("search", "compost heap")
    assert "1. " in out and "garden guide.md" in out

    code, out = run_cli("docs", "delete", "garden guide.md", "--json")
    assert code == 0 and json.loads(out)["deleted"]["name"] == "garden guide.md"
    code, out = run_cli("docs", "delete", "garden guide.md", "--json")
    assert code == 2 and "no document named" in json.loads(out)["error"]


def test_ingest_reports_a_link_out_and_a_guessed_encoding(run_cli, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("Nothing to see.")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "link.txt").symlink_to(outside)
    (folder / "codes.txt").write_bytes(b"Code KX-\xff\xfe-77 is retired.\n")
    code, out = run_cli("ingest", str(folder), "--json")
    results = {r["name"]: r for r in json.loads(out)["results"]}
    assert code == 0 and results["link.txt"]["status"] == "rejected"
    assert "outside the folder" in results["link.txt"]["reason"]
    assert results["codes.txt"]["note"].startswith("encoding guessed")
    code, out = run_cli("ingest", str(folder))
    assert "rejected   link.txt: a link to a file outside" in out
    assert "duplicate  codes.txt" in out
