"""bench.readme --check: a result older than the code it measures is named (bench/freshness.py)."""

from __future__ import annotations

import subprocess

import pytest

from bench import freshness


def git(root, *args):
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "render.py").write_text("y = 1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "code")
    monkeypatch.setattr(freshness, "MEASURES", {"result.json": ("code.py",)})
    return tmp_path


def commit(root, name, when):
    (root / name).write_text((root / name).read_text() + "z = 2\n")
    git(root, "add", name)
    subprocess.run(["git", "-C", str(root), "commit", "-q", "-m", name], check=True,
                   env={"GIT_COMMITTER_DATE": when, "GIT_AUTHOR_DATE": when,
                        "HOME": str(root), "PATH": "/usr/bin:/bin"})


def test_a_result_is_stale_once_its_code_changes_after_its_commit(repo):
    measured = {"_meta": {"commit": git(repo, "rev-parse", "HEAD"), "date": "2026-01-01"}}
    assert freshness.why_stale("result.json", measured, repo) is None
    commit(repo, "render.py", "2026-02-01T00:00:00+00:00")  # not code it measures
    assert freshness.why_stale("result.json", measured, repo) is None
    commit(repo, "code.py", "2026-02-02T00:00:00+00:00")
    reason = freshness.why_stale("result.json", measured, repo)
    assert reason and "which changed code.py" in reason


def test_without_a_commit_the_date_decides_and_a_day_gives_same_day_commits_the_benefit(repo):
    commit(repo, "code.py", "2026-02-02T15:00:00+00:00")
    assert freshness.why_stale("result.json", {"_meta": {"date": "2026-02-02"}}, repo) is None
    assert freshness.why_stale("result.json", {"date": "2026-02-02T16:00:00+00:00"}, repo) is None
    assert freshness.why_stale("result.json", {"date": "2026-02-02T14:00:00+00:00"}, repo)
    assert freshness.why_stale("result.json", {"_meta": {"date": "2026-02-01"}}, repo)
    assert "neither" in freshness.why_stale("result.json", {}, repo)


def test_an_evaluation_writing_its_scores_into_an_adapter_card_leaves_it_fresh(repo,
                                                                                  monkeypatch):
    """The evaluation writes card.json's ``eval`` (no answer reads it) and is committed with
    it; the card's other fields (its system prompt) are code."""
    import json

    card = repo / "adapters" / "a" / "card.json"
    card.parent.mkdir(parents=True)
    card.write_text(json.dumps({"system_prompt": "Be brief.", "eval": None}))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "adapter")
    monkeypatch.setattr(freshness, "MEASURES", {"result.json": ("code.py", "adapters/a")})
    measured = {"_meta": {"commit": git(repo, "rev-parse", "HEAD")}}
    card.write_text(json.dumps({"system_prompt": "Be brief.", "eval": {"recall": 0.5}}))
    git(repo, "commit", "-q", "-am", "scores")
    assert freshness.why_stale("result.json", measured, repo) is None
    card.write_text(json.dumps({"system_prompt": "Be long.", "eval": {"recall": 0.5}}))
    git(repo, "commit", "-q", "-am", "prompt")
    reason = freshness.why_stale("result.json", measured, repo)
    assert reason and "which changed adapters/a/card.json" in reason


def test_only_the_declared_paths_globs_and_exclusions_count(repo, monkeypatch):
    """A commit elsewhere leaves a result fresh: the flag means its own code changed."""
    for name in ("pkg/core.py", "pkg/render.py", "tools/helper.py", "other/writer.py"):
        (repo / name).parent.mkdir(exist_ok=True)
        (repo / name).write_text("x = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "more code")
    monkeypatch.setattr(freshness, "MEASURES",
                        {"result.json": ("pkg", "!pkg/render.py", "tools/*.py")})
    measured = {"_meta": {"commit": git(repo, "rev-parse", "HEAD")}}
    for name in ("other/writer.py", "pkg/render.py", "code.py"):  # not its code
        commit(repo, name, "2026-02-01T00:00:00+00:00")
        assert freshness.why_stale("result.json", measured, repo) is None, name
    commit(repo, "tools/helper.py", "2026-02-02T00:00:00+00:00")
    assert "which changed tools/helper.py" in freshness.why_stale("result.json", measured, repo)
    commit(repo, "pkg/core.py", "2026-02-03T00:00:00+00:00")
    assert "which changed pkg/core.py" in freshness.why_stale("result.json", measured, repo)


def test_an_entry_that_names_no_file_is_reported(repo, monkeypatch):
    monkeypatch.setattr(freshness, "MEASURES", {"result.json": ("code.py", "cdoe.py", "x/*.py")})
    assert freshness.unmatched(repo) == ["result.json: cdoe.py", "result.json: x/*.py"]
    assert "MEASURES names no file: result.json: cdoe.py" in freshness.stale(repo)[0]


def test_the_real_declarations_match_files_and_are_honest_about_the_answer_path():
    assert freshness.unmatched() == []
    answer_path = ("assistant/answering", "assistant/backends", "assistant/models",
                   "assistant/retrieval")
    end_to_end = ["pipeline", "backends", "context", "conversations", "soak", "answer",
                  "eval/summary", "conversations-eval/conversations"]
    for name in end_to_end:
        code = freshness.MEASURES[f"bench/results/{name}.json"]
        assert "assistant" not in code  # the whole package would flag after every commit
        assert set(answer_path) <= set(code), name

    def covered(result):
        listed = freshness._git(freshness.ROOT, "ls-files", "--",
                                *freshness.pathspecs(freshness.MEASURES[result]))
        return set((listed or "").split())

    soak = covered("bench/results/soak.json")
    assert {"assistant/answering/pipeline.py", "assistant/api/app.py", "assistant/ui/chat.py",
            "assistant/ledger/store.py", "assistant/server.py"} <= soak
    assert not {"assistant/commands/writer.py", "assistant/ui/training.py",
                "assistant/training/loop.py"} & soak
    scored = covered("bench/results/eval/summary.json")
    assert {"assistant/ledger/costs.py", "assistant/ledger/metrics.py", "assistant/text.py",
            "assistant/settings.py"} <= scored
