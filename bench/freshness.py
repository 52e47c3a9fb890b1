"""Is a committed result older than the code it measures? (``python -m bench.readme --check``)

A rendered figure is only as good as the code it was measured on. The rule, kept simple so
it never needs a judgement call:

- ``MEASURES`` names, per result file, the code whose change can move its figures: the
  benchmark's own file and the product modules on its path (not the code that renders it),
  as paths, folders, globs and ``!`` exclusions. A commit elsewhere (another command, a
  tab the result never touches) leaves the result fresh; an entry that matches no file is
  named too, since it would hide every change.
- A result says when it was measured: the commit it ran on (``_meta.commit``, which
  ``bench.run`` records) or, failing that, its date (``_meta.date``, a day; an evaluation
  summary's ``date``, a timestamp).
- It is stale when the last commit touching its code is not contained in its commit, or,
  with only a date, was committed after it (after the end of that day for a day alone:
  same-day commits cannot be told apart and are given the benefit of the doubt).
- An adapter's card is part of its code (its system prompt is read at answer time), but
  ``card.md`` is only read by people, and a commit whose only change to a result's code is
  an evaluation writing its scores into ``card.json`` (its ``eval`` entry, which no answer
  reads) does not count: otherwise the evaluation that writes them would be older than its
  own code the moment it is committed.

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

# A result's code is a list of paths (a file, or a folder: every file under it), globs
# (``assistant/ledger/*.py``) and exclusions (``!assistant/ui/training.py``): git pathspecs.
# Honest lists: a result lists everything on its path, so that a change that can move its
# figures flags it; and nothing else, so that the flag keeps its meaning.
# Local decoding: generator, batcher, sampling, the 4-bit base, adapters; settings hold the
# defaults measured (threads, batch size, quantisation).
_DECODE = ("assistant/models/batching.py", "assistant/models/decoding.py",
           "assistant/models/sampling.py", "assistant/models/generation.py",
           "assistant/models/stream.py", "assistant/models/base_models.py",
           "assistant/models/int4.py", "assistant/models/adapters.py", "assistant/settings.py")
# One answer through the Pipeline: routing, retrieval, sentence ranking and re-ranking (a
# model's likelihood: models/ and backends/), prompts, the answer check, generation on the
# configured engine; services.py wires it, settings.py holds its defaults, text.py its
# shared text rules.
_ANSWER = ("assistant/answering", "assistant/retrieval", "assistant/models",
           "assistant/backends", "assistant/services.py", "assistant/settings.py",
           "assistant/text.py")
# Recording an answer (store, schema, costs, telemetry), not the aggregates read later
# (metrics.py: `assistant stats` and the evaluation's per-mode figures) or the arena's votes.
_LEDGER = ("assistant/ledger", "!assistant/ledger/metrics.py", "!assistant/ledger/votes.py",
           "!assistant/ledger/preferences.py")
# The same answers ledgered by `assistant serve` behind the OpenAI-compatible API.
_SERVE = (*_ANSWER, *_LEDGER, "assistant/api", "assistant/access.py",
          "assistant/errors.py", "assistant/server.py", "assistant/commands/serve.py")
# The demo domain every end-to-end result answers from.
_DEMO = ("adapters/harrowgate-water", "!adapters/harrowgate-water/card.md",
         "knowledge/harrowgate-water")
# Evaluation figures: the answers, their scores (evaluation/), the cost model and the
# per-mode aggregates (ledger/metrics.py).
_SCORED = (*_ANSWER, "assistant/ledger/costs.py", "assistant/ledger/metrics.py", *_DEMO)
MEASURES: dict[str, tuple[str, ...]] = {
    "bench/results/decode.json": ("bench/bench_decode.py", *_DECODE,
                                  "assistant/backends/llamacpp.py",
                                  "assistant/backends/lora_gguf.py"),
    "bench/results/models.json": ("bench/bench_models.py", *_DECODE),
    "bench/results/batching.json": ("bench/bench_batching.py", "bench/together.py", *_DECODE),
    "bench/results/backends.json": ("bench/bench_backends.py", "bench/together.py", *_ANSWER,
                                    *_LEDGER, "adapters/harrowgate-water",
                                    "!adapters/harrowgate-water/card.md",
                                    "knowledge/harrowgate-water/qa"),
    "bench/results/pipeline.json": ("bench/bench_pipeline.py", *_ANSWER, *_LEDGER, *_DEMO),
    "bench/results/context.json": ("bench/bench_context.py", *_ANSWER,
                                   "assistant/evaluation/run.py", *_DEMO),
    "bench/results/conversations.json": ("bench/bench_conversations.py", *_ANSWER,
                                         "knowledge/harrowgate-water"),
    "bench/results/retrieval.json": ("bench/bench_retrieval.py", "assistant/retrieval",
                                     "assistant/settings.py", "knowledge/harrowgate-water"),
    # a whole `assistant serve` (API, web chat and upload) under load: what it runs, not
    # the training and evaluation code, the other commands, or the tabs it never calls
    "bench/results/soak.json": ("bench/bench_soak.py", "bench/soak_clients.py", *_SERVE,
                                "assistant/ui", *(f"!assistant/ui/{tab}.py" for tab in (
                                    "adapters", "arena", "compare", "from_documents",
                                    "from_documents_data", "metrics", "training")), *_DEMO),
    "bench/results/answer.json": ("bench/bench_answer.py", "bench/answer_clients.py",
                                  "bench/soak_clients.py", "bench/together.py", *_SERVE,
                                  *_DEMO),
    "bench/results/eval/summary.json": ("assistant/evaluation/run.py", *_SCORED),
    "bench/results/conversations-eval/conversations.json": (
        "assistant/evaluation/conversations.py", "assistant/evaluation/run.py", *_SCORED),
}


def pathspecs(code: tuple[str, ...] | list[str]) -> list[str]:
    """MEASURES' entries as git pathspecs: ``!x`` excludes x, ``*?[`` make a glob."""
    specs = []
    for entry in code:
        exclude, path = entry.startswith("!"), entry.removeprefix("!")
        magic = ["exclude"] * exclude + ["glob"] * any(c in path for c in "*?[")
        specs.append(f":({','.join(magic)}){path}" if magic else path)
    return specs


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


def _scores_only(root: Path, sha: str, code: list[str]) -> bool:
    """Whether commit ``sha`` changed this code only by writing evaluation scores into
    adapters' card.json files (their ``eval`` entry; everything else equal)."""
    changed = (_git(root, "show", "--format=", "--name-only", sha, "--", *code) or "").split()
    if not changed or not all(f.startswith("adapters/") and f.endswith("/card.json")
                              for f in changed):
        return False
    for name in changed:
        try:
            before, after = (json.loads(_git(root, "show", f"{rev}:{name}") or "")
                             for rev in (f"{sha}^", sha))
        except ValueError:  # added, removed or not JSON: a real change
            return False
        if not (isinstance(before, dict) and isinstance(after, dict)) or (
                {**before, "eval": None} != {**after, "eval": None}):
            return False
    return True


def _last_change(root: Path, code: list[str]) -> str | None:
    """'SHA ISO-DATE' of the last commit that changed this code (scores-only ones skipped)."""
    for line in (_git(root, "log", "--format=%H %cI", "--", *code) or "").splitlines():
        if not _scores_only(root, line.split()[0], code):
            return line
    return None


def why_stale(path: str, result: dict[str, Any], root: Path = ROOT) -> str | None:
    """A sentence saying which newer commit changed ``path``'s code, or None if fresh (or
    when git cannot tell)."""
    code = pathspecs(MEASURES[path])
    last = _last_change(root, code)
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


def unmatched(root: Path = ROOT) -> list[str]:
    """MEASURES' entries that match no committed file (a typo or a moved file would make a
    result never stale); empty without git."""
    return [f"{path}: {entry}" for path, code in MEASURES.items() for entry in code
            if not entry.startswith("!") and _git(root, "ls-files", "--", *pathspecs([entry]))
            == ""]


def stale(root: Path = ROOT) -> list[str]:
    """Why each committed result in ``MEASURES`` is older than its code, and each entry of
    its code that names no file."""
    found = [f"bench/freshness.py MEASURES names no file: {entry}" for entry in unmatched(root)]
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
