"""The "Train from documents" handlers with fakes: generation in a worker (progress, cancel,
staging), the review table's edits saved into train.jsonl, training through
services.training, evaluation with its verdict, and who may do each."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from assistant.access import Access
from assistant.errors import AdapterError
from assistant.evaluation.report import verdict
from assistant.evaluation.run import break_even, summarise_mode
from assistant.services import Services
from assistant.settings import Settings
from assistant.training.jobs import JobStatus
from assistant.ui import from_documents as fd
from assistant.ui.common import Context
from assistant.ui.from_documents_data import apply_edits, sample_rows
from tests.unit.ui_fakes import request

PAIRS = [
    {"question": f"When does the car park open? ({n})", "answer": "It opens at 07:30.",
     "must_contain": ["07:30"], "source": "rules.md", "fact_id": "open"} for n in range(3)
] + [{"question": "How much is a permit?", "answer": "A permit costs 12 pounds.",
      "must_contain": ["12 pounds"], "source": "rules.md", "fact_id": "permit"}]
TEST = [{"question": "At what time can I park?", "answer": "It opens at 07:30.",
         "must_contain": ["07:30"], "fact_id": "open"}]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def fake_synthesize(calls: list, gate: threading.Event | None = None):
    """Writes the four files synthesize_domain writes (after ``gate`` opens, if given)."""
    def synthesize(services, domain, out_dir, phrasings=3, eval_share=0.5, seed=0,
                   model_rewordings=0, progress_bar=True, writer="rules"):
        calls.append({"domain": domain, "out": Path(out_dir), "phrasings": phrasings,
                      "model_rewordings": model_rewordings, "writer": writer})
        if gate is not None:
            gate.wait(10)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_jsonl(out / "train.jsonl", PAIRS)
        write_jsonl(out / "test.jsonl", TEST)
        report = {"domain": domain, "passages": 2, "facts_found": 3, "facts_kept": 2,
                  "train_pairs": 4, "test_questions": 1, "out_of_scope_questions": 0,
                  "held_out_overlap": {"mean": 0.2, "max": 0.4},
                  "dropped_by_reason": {"fact: not retrieved": 1},
                  "files": {n: str(out / n) for n in ("train.jsonl", "test.jsonl",
                                                      "report.json", "report.md")}}
        (out / "report.json").write_text(json.dumps(report))
        (out / "report.md").write_text("# report\n")
        return report
    return synthesize


def summary(out: Path, adapter: str) -> dict:
    def row(mode, recall, ms, cost):
        return {"mode": mode, "chosen_mode": mode, "recall": recall, "similarity": 0.5,
                "declined": False, "out_of_scope": False, "error": None, "prompt_tokens": 50,
                "completion_tokens": 8, "rerank_tokens": 0, "ttft_ms": ms / 4, "total_ms": ms,
                "tokens_per_s": 10.0, "cost_usd": cost, "grounding": None,
                "generated_recall": recall}
    per_mode = {m: summarise_mode([row(m, r, ms, c)]) for m, r, ms, c in (
        ("prompt", 0.5, 900, 3e-5), ("adapter", 0.25, 400, 1e-5), ("layered", 0.75, 1000, 4e-5))}
    return {"n_questions": 1, "n_out_of_scope": 0, "adapter": adapter, "max_new_tokens": 32,
            "decoding": "greedy (temperature 0)", "per_mode": per_mode,
            "verdict": verdict(per_mode), "break_even": break_even(per_mode, 0.01, "ledger"),
            "files": {"report": str(out / "report.md"), "csv": str(out / "results.csv")}}


class FakeAdapters:
    names = ("water", "water-v2")

    def check(self, name):
        if name not in self.names:
            raise AdapterError(f"no adapter named {name!r}")
        return {}


class FakeTraining:
    def __init__(self) -> None:
        self.started: list[dict] = []

    def start(self, name, data, overwrite=False, **overrides):
        self.started.append({"name": name, "data": Path(data), "overwrite": overwrite,
                             "rows": Path(data).read_text(), **overrides})

    def status(self) -> JobStatus:
        return JobStatus(state="done", name=self.started[-1]["name"], message="ready",
                         step=2, total=2, loss=1.5, losses=((1, 2.0), (2, 1.5)))

    def cancel(self) -> bool:
        return False


@pytest.fixture
def flow(tmp_path, monkeypatch):
    monkeypatch.setattr(fd, "POLL_S", 0.01)
    settings = Settings(data_dir=tmp_path / "data", adapters_dir=tmp_path / "adapters",
                        admins="root")
    services = Services(settings, store=SimpleNamespace(domains=lambda: ["water", "bees"]),
                        training=FakeTraining(), adapters=FakeAdapters())
    calls: list = []
    flow = fd.Flow(Context(services, Access(settings)), synthesize=fake_synthesize(calls))
    flow.calls = calls
    return flow


ROOT = request(user="root")


def run(handler) -> list:
    return list(handler)


# --- 1. generate ------------------------------------------------------------------------
def test_generating_writes_the_domains_pairs_and_shows_a_sample(flow):
    outputs = run(flow.generate("water", 2, 1, ROOT))
    status, rows = outputs[-1]
    folder = flow.folder("water")
    assert flow.calls == [{"domain": "water", "out": folder.with_name(".water.staging"),
                           "phrasings": 2, "model_rewordings": 1,
                           "writer": "learned"}]  # the rules when no writer adapter
    assert (folder / "train.jsonl").is_file() and (folder / "test.jsonl").is_file()
    assert not folder.with_name(".water.staging").exists()
    assert "4 training pairs" in status and "1 held-out questions" in status
    assert "`data/synth/water/report.md`" in status and str(folder) not in status
    assert rows[0] == [1, PAIRS[0]["question"], "It opens at 07:30.", "07:30"]
    assert json.loads((folder / "report.json").read_text())["files"]["train.jsonl"] == str(
        folder / "train.jsonl")  # not the staging folder it was written in
    assert flow.pairs("water", ROOT)[1] == rows  # shown again to a visitor coming back


def test_cancelling_a_generation_keeps_the_previous_pairs(flow):
    run(flow.generate("water", 3, 0, ROOT))
    train = flow.folder("water") / "train.jsonl"
    train.write_text(json.dumps(PAIRS[3]) + "\n")  # the pairs of an earlier run
    gate = threading.Event()
    flow.synthesize = fake_synthesize([], gate)
    stream = flow.generate("water", 3, 0, ROOT)
    assert "Generating pairs from **water**" in next(stream)[0]
    with pytest.raises(gr.Error, match="still finishing|running"):
        run(flow.generate("water", 3, 0, ROOT))  # one generation at a time
    assert "Cancelled" in flow.stop_generating(ROOT)
    status, rows = next(stream)
    assert status.startswith("Cancelled") and rows == []
    gate.set()
    flow.synth.wait(10)
    assert train.read_text() == json.dumps(PAIRS[3]) + "\n"
    assert not flow.folder("water").with_name(".water.staging").exists()
    assert flow.stop_generating(ROOT) == "No generation is running."


def test_a_failed_generation_says_why(flow):
    def broken(*args, **kwargs):
        raise fd.StrataError("no fact sentences found in domain 'water'")
    flow.synthesize = broken
    with pytest.raises(gr.Error, match="no fact sentences found"):
        run(flow.generate("water", 3, 0, ROOT))


def test_only_admins_and_only_visible_domains(flow):
    with pytest.raises(gr.Error, match="only admins may generate"):
        run(flow.generate("water", 3, 0, request(user="bob")))
    with pytest.raises(gr.Error, match="only admins may train"):
        run(flow.train("water", "", 3, False, [], False, request(user="bob")))
    with pytest.raises(gr.Error, match="only admins may run evaluations"):
        run(flow.run_eval("water", "", 32, 0, request(user="bob")))
    with pytest.raises(gr.Error, match="no documents in domain 'fish'"):
        run(flow.generate("fish", 3, 0, ROOT))
    with pytest.raises(gr.Error, match="Choose a domain"):
        run(flow.generate("", 3, 0, ROOT))
    assert flow.calls == []


# --- 2. review ------------------------------------------------------------------------------
def test_edits_are_written_back_by_line_and_a_cleared_question_removes_its_pair(tmp_path):
    path = tmp_path / "train.jsonl"
    write_jsonl(path, PAIRS)
    rows = sample_rows(path)
    rows[1][1] = "What time does the car park open?"
    rows[3][1] = ""  # removes the permit pair
    rows[0][3] = "07:30 | opens"
    rows.append([99, "unknown line", "ignored", ""])
    assert apply_edits(path, rows) == (2, 1)
    kept = [json.loads(line) for line in path.read_text().splitlines()]
    assert [k["question"] for k in kept] == [
        PAIRS[0]["question"], "What time does the car park open?", PAIRS[2]["question"]]
    assert kept[0]["must_contain"] == ["07:30", "opens"] and kept[0]["fact_id"] == "open"
    assert apply_edits(path, sample_rows(path)) == (0, 0)  # unchanged rows write nothing


def test_the_sample_is_spread_over_the_file(tmp_path):
    path = tmp_path / "train.jsonl"
    write_jsonl(path, [{**PAIRS[0], "question": f"q{n}"} for n in range(100)])
    rows = sample_rows(path, size=10)
    assert [r[0] for r in rows] == list(range(1, 101, 10))
    assert sample_rows(tmp_path / "missing.jsonl") == []


# --- 3. train --------------------------------------------------------------------------------
def test_training_saves_the_edits_then_trains_on_train_jsonl(flow):
    _, rows = run(flow.generate("water", 3, 0, ROOT))[-1]
    rows[0][2] = "The car park opens at 07:30."
    status, curve = run(flow.train("water", "", 4, True, {"data": rows}, False, ROOT))[-1]
    started = flow.ctx.services.training.started
    assert started[0]["name"] == "water" and started[0]["epochs"] == 4
    assert started[0]["data"] == flow.folder("water") / "train.jsonl"
    assert started[0]["overwrite"] is True
    assert "The car park opens at 07:30." in started[0]["rows"]  # saved before training
    assert status.startswith("Saved 1 edited and 0 removed") and "Trained **water**" in status
    assert curve is not None


def test_training_before_generating_is_refused(flow):
    with pytest.raises(gr.Error, match="Generate the pairs first"):
        run(flow.train("water", "mine", 3, False, [], False, ROOT))


# --- 4. evaluate -----------------------------------------------------------------------------
def test_evaluation_streams_progress_and_shows_the_verdict(flow):
    run(flow.generate("water", 3, 0, ROOT))
    seen = {}

    def evaluate(services, questions, out_dir, **kwargs):
        seen.update(questions=questions, out=out_dir, **kwargs)
        for n in range(1, 4):
            kwargs["progress"](n, 3, {})
        return summary(Path(out_dir), kwargs["adapter"])

    flow.evaluate = evaluate
    outputs = run(flow.run_eval("water", "water-v2", 24, 5, ROOT))
    status, table, *plots = outputs[-1]
    assert seen["questions"] == flow.folder("water") / "test.jsonl"
    assert seen["out"] == flow.folder("water") / "eval-water-v2"
    assert seen["modes"] == ["prompt", "adapter", "layered"] and seen["adapter"] == "water-v2"
    assert seen["max_new_tokens"] == 24 and seen["limit"] == 5
    assert "synthesized" in seen["questions_note"]
    assert seen["domains"] == ["water"]  # retrieval reads the chosen domain only, no one else's
    assert status.startswith("Evaluated **water-v2**")
    assert "| mode | answers | fact recall" in table and "| layered | 1 | 0.75" in table
    assert "Accuracy: layered" in table and "pays for itself after 500 questions" in table
    assert len(plots) == 3 and all(hasattr(p, "savefig") for p in plots)


def test_an_evaluation_can_be_cancelled(flow):
    run(flow.generate("water", 3, 0, ROOT))
    started = threading.Event()

    def evaluate(services, questions, out_dir, **kwargs):
        for n in range(1, 10_000):
            started.set()
            kwargs["progress"](n, 10_000, {})
            threading.Event().wait(0.01)
        return {}

    flow.evaluate = evaluate
    stream = flow.run_eval("water", "", 32, 0, ROOT)
    next(stream)
    started.wait(5)
    assert flow.stop_eval(ROOT) == "Cancelling after the current answer."
    assert run(stream)[-1][0] == "Evaluation cancelled."
    assert flow.stop_eval(ROOT) == "No evaluation is running."


def test_a_failed_evaluation_says_why(flow):
    run(flow.generate("water", 3, 0, ROOT))
    with pytest.raises(gr.Error, match="no adapter named '../x'"):
        run(flow.run_eval("water", "../x", 32, None, ROOT))  # refused before it starts
    assert flow.evaluation.thread is None

    def evaluate(*args, **kwargs):
        raise fd.StrataError("unknown adapter 'water'")

    flow.evaluate = evaluate
    with pytest.raises(gr.Error, match="unknown adapter 'water'"):
        run(flow.run_eval("water", "", 32, None, ROOT))


def test_table_values_from_the_browser_and_from_gradio_client():
    rows = [[1, "q", "a", ""]]
    assert fd.table_rows(rows) == rows
    assert fd.table_rows({"headers": ["line"], "data": rows}) == rows
    assert fd.table_rows(None) == []
