"""`assistant eval` saves each answer as it is scored; Ctrl-C leaves a folder that `--resume`
finishes into the same files a whole run writes; another evaluation's answers are refused."""

from __future__ import annotations

import csv
import json
import shlex

import pytest

from assistant.errors import StrataError
from assistant.evaluation import run as ev
from assistant.evaluation.partial import (
    PARTIAL,
    Interrupted,
    PartialRun,
    PartialWriter,
    saved_part,
)
from tests.tiny_models import tiny_services
from tests.unit.test_evaluation import FEES, QUESTIONS, write_jsonl

MODES = "base,prompt"  # 3 questions x 2 modes: 6 answers


@pytest.fixture
def services(tmp_path, tiny_base, adapters_dir):
    return tiny_services(tmp_path, tiny_base, adapters_dir, FEES)


@pytest.fixture
def questions(tmp_path):
    return write_jsonl(tmp_path / "qa.jsonl", QUESTIONS)


def interrupt_after(services, monkeypatch, answers: int) -> list[str]:
    """Ctrl-C arrives while answer ``answers + 1`` is asked; returns the questions asked."""
    asked: list[str] = []
    ask = getattr(services.pipeline.ask, "original", services.pipeline.ask)  # not a fake's

    def fake(question, **kwargs):
        if len(asked) == answers:
            raise KeyboardInterrupt
        asked.append(question)
        return ask(question, **kwargs)

    fake.original = ask
    monkeypatch.setattr(services.pipeline, "ask", fake)
    return asked


def csv_rows(path):
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_each_answer_is_on_disk_when_scored_and_the_file_goes_at_the_end(services, questions,
                                                                         tmp_path):
    out = tmp_path / "out"
    seen = []
    ev.evaluate(services, questions, out, modes=MODES, max_new_tokens=3, show_bar=False,
                progress=lambda done, total, row: seen.append(
                    len((out / PARTIAL).read_text().splitlines()) - 1))
    assert seen == [1, 2, 3, 4, 5, 6]  # the header, then one line per scored answer
    assert not (out / PARTIAL).exists() and (out / "summary.json").is_file()


def test_an_interrupted_run_resumes_into_the_files_of_a_whole_run(services, questions, tmp_path,
                                                                  monkeypatch):
    whole = ev.evaluate(services, questions, tmp_path / "whole", modes=MODES, max_new_tokens=3,
                        show_bar=False, update_card=False)
    out = tmp_path / "out"
    asked = interrupt_after(services, monkeypatch, 3)
    with pytest.raises(Interrupted) as stop:
        ev.evaluate(services, questions, out, modes=MODES, max_new_tokens=3, show_bar=False)
    assert (stop.value.done, stop.value.total, stop.value.partial) == (3, 6, out / PARTIAL)
    assert not (out / "results.csv").exists()
    saved = PartialRun.read(out)
    assert sorted(saved.answered()) == [(0, "base"), (0, "prompt"), (1, "base")]

    with pytest.raises(StrataError, match="add --resume"):  # the command's default
        ev.evaluate(services, questions, out, modes=MODES, max_new_tokens=3, show_bar=False,
                    on_partial="refuse")
    asked = interrupt_after(services, monkeypatch, 99)
    resumed = ev.evaluate(services, questions, out, modes=MODES, max_new_tokens=3,
                          show_bar=False, update_card=False, on_partial="resume")
    assert asked == [QUESTIONS[1]["question"]] + [QUESTIONS[2]["question"]] * 2  # the rest only
    assert not (out / PARTIAL).exists()
    assert resumed.keys() == whole.keys()
    assert resumed["session_id"] == saved.header["session_id"]  # one run in the ledger
    assert resumed["date"] == saved.header["date"] and resumed["seconds"] >= saved.seconds
    rows, fresh = csv_rows(out / "results.csv"), csv_rows(tmp_path / "whole" / "results.csv")
    assert [r.keys() for r in rows] == [r.keys() for r in fresh]
    assert [(r["index"], r["mode"]) for r in rows] == [(r["index"], r["mode"]) for r in fresh]
    assert all(r["similarity"] not in ("", None) for r in rows)  # kept rows scored too
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk.keys() == json.loads((tmp_path / "whole" / "summary.json").read_text()).keys()
    assert on_disk["per_mode"]["base"]["count"] == 3
    ledger = [r for r in services.ledger.rows() if r["session_id"] == resumed["session_id"]]
    assert len(ledger) == 6


def test_a_partial_run_of_another_evaluation_is_refused_naming_the_difference(
        services, questions, tmp_path, monkeypatch):
    out = tmp_path / "out"
    interrupt_after(services, monkeypatch, 1)
    with pytest.raises(Interrupted):
        ev.evaluate(services, questions, out, modes=MODES, max_new_tokens=3, show_bar=False)
    for change, message in (({"modes": "prompt,base"}, "--modes"),
                            ({"max_new_tokens": 5}, "--max-new-tokens"),
                            ({"limit": 2}, "--limit")):
        kwargs = {"modes": MODES, "max_new_tokens": 3, **change}
        with pytest.raises(StrataError, match=f"another evaluation: {message}"):
            ev.evaluate(services, questions, out, show_bar=False, on_partial="resume", **kwargs)
    questions.write_text(questions.read_text().replace("fee?", "fee, please?"))
    with pytest.raises(StrataError, match=r"questions \(file content\)"):
        ev.evaluate(services, questions, out, modes=MODES, max_new_tokens=3, show_bar=False,
                    on_partial="refuse")
    assert PartialRun.read(out) is not None  # nothing was overwritten


def test_failed_rows_are_asked_again_and_a_torn_last_line_is_dropped(tmp_path):
    header = {"questions_sha256": "abc", "modes": ["base"], "adapter": None,
              "session_id": "eval-1", "date": "2026-12-07T00:00:00+00:00"}
    ok = {"index": 0, "mode": "base", "answer": "148.50", "error": None}
    failed = {"index": 1, "mode": "base", "answer": "", "error": "too long"}
    writer = PartialWriter(tmp_path, header, [ok], seconds=2.0)
    writer.add(failed, seconds=3.5)
    writer.close()
    with (tmp_path / PARTIAL).open("a") as fh:
        fh.write('{"row": {"index": 2, "mo')  # the process died mid-line
    saved = PartialRun.read(tmp_path)
    assert saved is not None and saved.seconds == 3.5 and len(saved.rows) == 2
    answered, seconds = saved_part(tmp_path, dict(header), "resume", total=3)
    assert list(answered) == [(0, "base")] and seconds == 3.5
    assert saved_part(tmp_path, dict(header), "restart", total=3) == ({}, 0.0)
    (tmp_path / PARTIAL).write_text("not json\n")
    with pytest.raises(StrataError, match="not a partial evaluation"):
        PartialRun.read(tmp_path)


def test_the_command_says_how_to_resume_after_ctrl_c_and_that_command_finishes(
        services, questions, tmp_path, monkeypatch, capsys):
    """The real entry point (`assistant eval`), on the tiny model's services."""
    from assistant.cli import main

    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("assistant.services.Services", lambda settings: services)
    monkeypatch.setattr("assistant.retrieval.ingest.ensure_demo_knowledge", lambda *a: None)
    out = tmp_path / "out"
    command = ["eval", "--questions", str(questions), "--modes", MODES, "--max-new-tokens", "3",
               "--out", str(out), "--no-card", "--no-progress"]
    interrupt_after(services, monkeypatch, 2)
    assert main(command) == 130
    err = capsys.readouterr().err
    assert f"2 of 6 answers are saved in {out / PARTIAL}" in err
    again = shlex.split(err.strip().splitlines()[-1])
    assert again[:2] == ["assistant", "eval"] and again[-1] == "--resume"

    assert main(command) == 2  # not overwritten without --resume
    assert "add --resume" in capsys.readouterr().err
    assert main([*command[:1], "--conversations", str(questions), "--out", str(out),
                 "--resume"]) == 2
    assert "--resume finishes a --questions" in capsys.readouterr().err

    asked = interrupt_after(services, monkeypatch, 99)
    assert main([*again[1:], "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert len(asked) == 4 and summary["n_questions"] == 3
    assert len(csv_rows(out / "results.csv")) == 6 and not (out / PARTIAL).exists()


def test_ctrl_c_while_the_files_are_written_keeps_every_answer(services, questions, tmp_path,
                                                               monkeypatch):
    from assistant.evaluation import report

    write_all = report.write_all

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "out"
    monkeypatch.setattr(report, "write_all", interrupted)
    with pytest.raises(Interrupted) as stop:
        ev.evaluate(services, questions, out, modes=MODES, max_new_tokens=3, show_bar=False)
    assert stop.value.done == 6 and (out / PARTIAL).is_file()
    monkeypatch.setattr(report, "write_all", write_all)
    asked = interrupt_after(services, monkeypatch, 99)
    ev.evaluate(services, questions, out, modes=MODES, max_new_tokens=3, show_bar=False,
                on_partial="resume")
    assert asked == [] and len(csv_rows(out / "results.csv")) == 6
