"""An evaluation's answers saved as they are scored, so a crash or Ctrl-C costs one answer.

An evaluation on a 2-core CPU takes an hour and writes its files only at the end; without
this, an interruption near the end lost every answer. While it runs, ``DIR/results.partial.jsonl``
holds one header line (what makes the run: the questions' content, modes, adapter, answer
length, retrieval domains, model and engine, its ledger session and start) and then one line
per scored answer, each flushed to disk. ``assistant eval ... --resume`` reads it back, checks
that it is the same run (refusing, with the difference named, when it is not), asks only what
is missing and writes the usual files; the partial file is removed once they are written.
A row that failed (``error``) is asked again on resume: the failure may have been passing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Literal

from assistant.errors import StrataError

PARTIAL = "results.partial.jsonl"
FORMAT = 1
# What to do with a partial run found in DIR: ask only what it lacks, refuse (the command's
# default: an hour of answers is not overwritten by accident), or start again (library callers
# such as the web app, which evaluate into their own folder as before).
OnPartial = Literal["resume", "refuse", "restart"]
# the header fields that must match for a resume; named in a refusal by these labels
IDENTITY = {"questions_sha256": "questions (file content)", "limit": "--limit",
            "modes": "--modes", "adapter": "adapter", "max_new_tokens": "--max-new-tokens",
            "domains": "retrieval domains", "base_model": "base model", "engine": "engine"}


def questions_digest(path: Path | str) -> str:
    """The questions file's content hash: a resume must ask the same questions, wherever the
    file now lies."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during the answers: how many were saved and where, so the command can say how
    to resume (still a KeyboardInterrupt for every other caller)."""

    def __init__(self, done: int, total: int, partial: Path) -> None:
        super().__init__(f"interrupted after {done} of {total} answers; they are saved in "
                         f"{partial}")
        self.done, self.total, self.partial = done, total, partial


class PartialRun:
    """The saved part of one run: its header and the rows answered, by (question, mode)."""

    def __init__(self, path: Path, header: dict[str, Any],
                 rows: dict[tuple[int, str], dict[str, Any]], seconds: float) -> None:
        self.path, self.header, self.rows, self.seconds = path, header, rows, seconds

    @classmethod
    def read(cls, out_dir: Path) -> PartialRun | None:
        """The partial run in ``out_dir``, or None; a torn last line (the process died while
        writing it) is dropped, any other damage refused."""
        path = out_dir / PARTIAL
        if not path.is_file():
            return None
        lines = path.read_text(encoding="utf-8").splitlines()
        try:
            header = json.loads(lines[0])["run"] if lines else None
        except (ValueError, KeyError, TypeError):
            header = None
        if not isinstance(header, dict):
            raise StrataError(f"{path}: not a partial evaluation (no header line); delete it "
                              "to start over")
        rows: dict[tuple[int, str], dict[str, Any]] = {}
        seconds = 0.0
        for number, line in enumerate(lines[1:], start=2):
            try:
                saved = json.loads(line)
            except ValueError:
                if number == len(lines):
                    break  # torn by the interruption: that answer is asked again
                raise StrataError(f"{path}:{number}: not valid JSON; delete the file to start "
                                  "over") from None
            row = saved["row"]
            rows[(row["index"], row["mode"])] = row
            seconds = float(saved["seconds"])
        return cls(path, header, rows, seconds)

    def check(self, header: dict[str, Any], command: str = "--resume") -> None:
        """Refuse to mix runs: every identity field of the saved header must match."""
        differ = [f"{label} ({self.header.get(key)!r} there, {header.get(key)!r} now)"
                  for key, label in IDENTITY.items()
                  if _comparable(self.header.get(key)) != _comparable(header.get(key))]
        if differ:
            raise StrataError(
                f"{self.path} is a partial run of another evaluation: {'; '.join(differ)}. "
                f"Run the same command as before with {command}, or choose another --out, or "
                "delete that file to start over")

    def answered(self) -> dict[tuple[int, str], dict[str, Any]]:
        """The rows a resume keeps: answered ones (failed rows are asked again)."""
        return {key: row for key, row in self.rows.items() if not row.get("error")}


def _comparable(value: object) -> object:
    """JSON turns tuples into lists and modes into strings; compare what was written."""
    return json.loads(json.dumps(value, default=str))


class PartialWriter:
    """Appends each scored row to the partial file and flushes it to disk at once."""

    def __init__(self, out_dir: Path, header: dict[str, Any],
                 rows: Sequence[dict[str, Any]] = (), seconds: float = 0.0) -> None:
        """Start the file afresh with ``header`` and the ``rows`` kept from before (so failed
        rows, asked again, do not stay in it twice)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / PARTIAL
        tmp = self.path.with_name(f".{PARTIAL}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps({"format": FORMAT, "run": header}, default=str) + "\n")
            for row in rows:
                fh.write(_line(row, seconds))
            _sync(fh)
        self.count = len(rows)
        tmp.replace(self.path)  # a crash here leaves the old file or the new, never half
        self._fh: IO[str] | None = self.path.open("a", encoding="utf-8")

    def add(self, row: dict[str, Any], seconds: float) -> None:
        """One scored row; ``seconds``: answering time of the whole run so far."""
        if self._fh is not None:
            self._fh.write(_line(row, seconds))
            _sync(self._fh)
            self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def finish(self) -> None:
        """The final files are written: the partial one has served."""
        self.close()
        self.path.unlink(missing_ok=True)


def _line(row: dict[str, Any], seconds: float) -> str:
    return json.dumps({"row": row, "seconds": round(seconds, 3)}, default=str) + "\n"


def _sync(fh: IO[str]) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def saved_part(out: Path, header: dict[str, Any], on_partial: OnPartial,
               total: int) -> tuple[dict[tuple[int, str], dict[str, Any]], float]:
    """The rows (and answering seconds) an interrupted run of the same evaluation saved in
    ``out``, keyed by (index, mode); a resume takes over its ledger session and start date
    (``header`` is updated), so the finished run reads as one."""
    saved = PartialRun.read(out) if on_partial != "restart" else None
    if saved is None:
        return {}, 0.0
    saved.check(header)  # another evaluation's answers are never mixed in
    answered = saved.answered()
    if on_partial == "refuse":
        raise StrataError(f"{out} holds an unfinished run of this evaluation ({len(answered)} of "
                          f"{total} answers saved in {saved.path}): add --resume to finish it, "
                          "or delete that file to start over")
    header.update(session_id=saved.header["session_id"], date=saved.header["date"])
    return answered, saved.seconds
