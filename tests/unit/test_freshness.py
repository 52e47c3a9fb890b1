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
