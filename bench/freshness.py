"""Is a committed result older than the code it measures? (``python -m bench.readme --check``)

A rendered figure is only as good as the code it was measured on. The rule, kept simple so
it never needs a judgement call:

- ``MEASURES`` names, per result file, the code whose change can move its figures: the
  benchmark's own file and the product modules on its path (not the code that renders it).
- A result says when it was measured: the commit it ran on (``_meta.commit``, which
  ``bench.run`` records) or, failing that, its date (``_meta.date``, a day; an evaluation
  summary's ``date``, a timestamp).
- It is stale when the last commit touching its code is not contained in its commit, or,
  with only a date, was committed after it (after the end of that day for a day alone:
  same-day commits cannot be told apart and are given the benefit of the doubt).

A run on uncommitted code counts as measuring its parent commit, so run benchmarks on
committed code. Without git (an unpacked archive) nothing is flagged. The research results
(research/results/) are one-off studies of the code of their day and not checked.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

_DECODE = ("assistant/models/batching.py", "assistant/models/decoding.py",
           "assistant/models/sampling.py", "assistant/models/generation.py",
           "assistant/models/stream.py", "assistant/models/base_models.py",
           "assistant/models/int4.py", "assistant/models/adapters.py")
_ANSWER = ("assistant/answering", "assistant/retrieval", "assistant/models",
           "assistant/backends", "assistant/services.py")
MEASURES: dict[str, tuple[str, ...]] = {
    "bench/results/decode.json": ("bench/bench_decode.py", *_DECODE,
                                  "assistant/backends/llamacpp.py",
                                  "assistant/backends/lora_gguf.py"),
    "bench/results/models.json": ("bench/bench_models.py", *_DECODE),
    "bench/results/batching.json": ("bench/bench_batching.py", *_DECODE),
    "bench/results/backends.json": ("bench/bench_backends.py", *_ANSWER),
    "bench/results/pipeline.json": ("bench/bench_pipeline.py", *_ANSWER),
    "bench/results/context.json": ("bench/bench_context.py", "assistant/answering",
                                   "assistant/retrieval"),
    "bench/results/conversations.json": ("bench/bench_conversations.py", "assistant/answering",
                                         "assistant/retrieval"),
    "bench/results/retrieval.json": ("bench/bench_retrieval.py", "assistant/retrieval"),
    "bench/results/soak.json": ("bench/bench_soak.py", "bench/soak_clients.py", "assistant"),
    "bench/results/answer.json": ("bench/bench_answer.py", "bench/answer_clients.py",
                                  "bench/soak_clients.py", "assistant", "adapters/harrowgate-water",
                                  "knowledge/harrowgate-water"),
    "bench/results/eval/summary.json": ("assistant/evaluation/run.py", *_ANSWER,
                                        "adapters/harrowgate-water", "knowledge/harrowgate-water"),
    "bench/results/conversations-eval/conversations.json": (
        "assistant/evaluation/conversations.py", *_ANSWER, "adapters/harrowgate-water",
        "knowledge/harrowgate-water"),
}


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def measured_on(result: dict[str, Any]) -> tuple[str | None, str | None]:
    """(commit, date) the result records; either may be None."""
    meta = result.get("_meta") or {}
    return meta.get("commit") or result.get("commit"), meta.get("date") or result.get("date")


def _after(committed: str, date: str) -> bool:
    """Whether an ISO commit time is later than a result's date (a day: its end)."""
    when = datetime.fromisoformat(committed)
    if len(date) == 10:  # YYYY-MM-DD
        end = datetime.fromisoformat(date).replace(tzinfo=UTC) + timedelta(days=1)
        return when >= end
    measured = datetime.fromisoformat(date)
    return when > (measured if measured.tzinfo else measured.replace(tzinfo=UTC))


def why_stale(path: str, result: dict[str, Any], root: Path = ROOT) -> str | None:
    """A sentence saying which newer commit changed ``path``'s code, or None if fresh (or
    when git cannot tell)."""
    code = [p for p in MEASURES[path] if (root / p).exists()]
    last = _git(root, "log", "-1", "--format=%H %cI", "--", *code)
    if not last:
        return None
    sha, committed = last.split()
    commit, date = measured_on(result)
    if commit and _git(root, "cat-file", "-e", f"{commit}^{{commit}}") is not None:
        if _git(root, "merge-base", "--is-ancestor", sha, commit) is not None:
            return None
        since = f"commit {commit[:7]}"
    elif date:
        if not _after(committed, date):
            return None
        since = date
    else:
        return f"{path} records neither the commit nor the date it was measured on"
    changed = _git(root, "show", "--format=", "--name-only", sha, "--", *code) or ""
    return (f"{path} (measured on {since}) is older than {sha[:7]} of {committed[:10]}, "
            f"which changed {', '.join(changed.split()[:3])}: rerun its command")


def stale(root: Path = ROOT) -> list[str]:
    """Why each committed result in ``MEASURES`` is older than its code."""
    found = []
    for path in MEASURES:
        file = root / path
        if file.is_file():
            reason = why_stale(path, json.loads(file.read_text()), root)
            if reason:
                found.append(reason)
    return found


def current_commit(root: Path = ROOT) -> str | None:
    """The commit a benchmark runs on (recorded in its result's ``_meta``)."""
    return _git(root, "rev-parse", "HEAD")
