"""`assistant eval --conversations`: the file (bad lines named), the three ways a follow-up
is asked, the scores and targets on a fake pipeline, and one run on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest

from assistant.errors import StrataError
from assistant.evaluation import conversations as ev
from assistant.models.generation import SamplingParams
from assistant.text import contains
from tests.tiny_models import tiny_services

DEMO = Path("knowledge/harrowgate-water/qa/conversations.jsonl")
DOCS = DEMO.parent.parent / "docs"
TOILETS = {"id": "toilets", "turns": [
    {"question": "What rebate do you give for a dual-flush toilet?", "must_contain": ["45.75"]},
    {"question": "Is there a yearly cap on those?", "must_contain": ["320"],
     "standalone": "Is there a yearly cap on water-saving rebates?"},
]}
JAPAN = {"id": "japan", "turns": [
    {"question": "What is the reconnection fee?", "must_contain": ["63.25"]},
    {"question": "Thanks. Unrelated: what is the capital of Japan?", "must_contain": [],
     "standalone": "What is the capital of Japan?", "out_of_scope": True},
]}


def write_lines(path: Path, *lines: object) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


# --- the file ----------------------------------------------------------------------------
def test_the_demo_file_parses_and_its_facts_are_in_the_documents():
    conversations = ev.load_conversations(DEMO)
    assert len(conversations) >= 20
    assert all(2 <= len(c.turns) <= 3 for c in conversations)
    assert sum(t.out_of_scope for c in conversations for t in c.turns) >= 2
    for line in DEMO.read_text().splitlines():
        for turn in json.loads(line)["turns"]:
            for fact in turn["must_contain"]:
                assert contains((DOCS / turn["source"]).read_text(), fact), (fact, turn)


@pytest.mark.parametrize("line, message", [
    ("{not json", "not valid JSON"),
    ('["a list"]', "expected a JSON object"),
    ({"id": "x", "turns": [TOILETS["turns"][0]]}, "at least two user turns"),
    ({"turns": [TOILETS["turns"][0], {**TOILETS["turns"][1], "standalone": ""}]},
     "turn 2: a follow-up needs 'standalone'"),
    ({"turns": [{"question": "Hi?", "must_contain": []}, TOILETS["turns"][1]]},
     "turn 1: 'must_contain' is empty but the turn is not out_of_scope"),
    ({"turns": [TOILETS["turns"][0], {**JAPAN["turns"][1], "out_of_scope": "yes"}]},
     "turn 2: 'out_of_scope' must be true or false"),
    ({"turns": [{"question": " ", "must_contain": ["1"]}, TOILETS["turns"][1]]},
     "turn 1: 'question' must be a non-empty string"),
    ({**JAPAN, "id": "toilets"}, "id 'toilets' repeats line 1"),
])
def test_a_bad_line_is_named_with_its_turn(tmp_path, line, message):
    path = write_lines(tmp_path / "c.jsonl", TOILETS, "", line)
    with pytest.raises(StrataError) as caught:
        ev.load_conversations(path)
    assert f"{path}:3" in str(caught.value) and message in str(caught.value)


def test_an_empty_or_missing_file_is_refused(tmp_path):
    with pytest.raises(StrataError, match="no conversations"):
        ev.load_conversations(write_lines(tmp_path / "c.jsonl", ""))
    with pytest.raises(StrataError, match="no such file"):
        ev.load_conversations(tmp_path / "missing.jsonl")


# --- scoring on a fake pipeline -----------------------------------------------------------
class FakePipeline:
    """Answers the first turns and the standalone rewordings; the follow-up only when it
    comes with its history; declines the rest."""

    ANSWERS: ClassVar[dict[str, str]] = {
        TOILETS["turns"][0]["question"]: "The rebate is 45.75 pounds.",
        TOILETS["turns"][1]["standalone"]: "The cap is 320 pounds a year.",
        JAPAN["turns"][0]["question"]: "The reconnection fee is 63.25 pounds."}

    def __init__(self):
        self.calls = []

    def ask(self, question, mode, adapter, session_id, params, history=None):
        self.calls.append((question, mode, history))
        text = self.ANSWERS.get(question, "The documents do not say.")
        if history and question == TOILETS["turns"][1]["question"]:
            text = "Yes, the cap is 320 pounds a year."
        return SimpleNamespace(
            text=text, mode=mode, adapter=adapter, generated=None, grounding="grounded",
            standalone_query=question if history else None, history_turns=len(history or []),
            router_ms=0.0, retrieval_ms=10.0 + 5 * len(history or []), total_ms=100.0,
            prompt_tokens=50, completion_tokens=9, ledger_id="x")


def test_every_follow_up_is_asked_three_ways_and_the_history_holds_the_models_answers():
    pipeline = FakePipeline()
    conversations = [ev._conversation("f:1", 1, TOILETS), ev._conversation("f:2", 2, JAPAN)]
    rows = ev.answer_conversations(pipeline, conversations, ["prompt", "layered"], None,
                                   SamplingParams(), "s")
    assert len(rows) == ev.count_answers(conversations, ["prompt", "layered"]) == 16
    prompt = [r for r in rows if r["mode"] == "prompt" and r["conversation"] == "toilets"]
    assert [(r["turn"], r["way"]) for r in prompt] == [
        (1, "first"), (2, "with_history"), (2, "without_history"), (2, "standalone")]
    first, with_, without, alone = prompt
    history = next(h for q, m, h in pipeline.calls if h and m == "prompt")
    assert history == [{"role": "user", "content": TOILETS["turns"][0]["question"]},
                       {"role": "assistant", "content": first["answer"]}]
    assert (first["recall"], with_["recall"], without["recall"]) == (1.0, 1.0, 0.0)
    assert alone["question"] == TOILETS["turns"][1]["standalone"] and alone["recall"] == 1.0
    assert with_["standalone_kind"] == "follow-up" and with_["standalone_ms"] >= 0
    japan = [r for r in rows if r["conversation"] == "japan" and r["turn"] == 2]
    assert all(r["recall"] is None and r["declined"] for r in japan)
    assert {r["standalone_kind"] for r in japan if r["way"] == "with_history"} == {"topic change"}


def test_the_summary_scores_each_way_and_checks_the_targets():
    conversations = [ev._conversation("f:1", 1, TOILETS), ev._conversation("f:2", 2, JAPAN)]
    rows = ev.answer_conversations(FakePipeline(), conversations, ["prompt"], None,
                                   SamplingParams(), "s")
    summary = ev.summarise(rows, ["prompt"])
    ways, targets = summary["per_mode"]["prompt"]["ways"], summary["per_mode"]["prompt"]["targets"]
    assert {w: ways[w]["recall"] for w in ev.WAYS} == {
        "first": 1.0, "with_history": 1.0, "without_history": 0.0, "standalone": 1.0}
    assert ways["with_history"]["n"] == 1 and ways["with_history"]["n_out_of_scope"] == 1
    assert ways["with_history"]["decline_rate"] == 1.0
    assert ways["with_history"]["topic_change_seen"] == 1.0
    assert targets == {"standalone_minus_with": 0.0, "within_standalone": True,
                       "with_minus_without": 1.0, "above_without": True, "met": True}
    added = summary["per_mode"]["prompt"]["added_ms"]
    assert added["n"] == 2 and 10.0 <= added["p50"] <= 11.0  # 2 history turns: +10 ms
    assert summary["standalone_step_ms"]["n"] == 2
    table = ev.markdown({"n_conversations": 2, "n_follow_ups": 2, "conversations_file": "f",
                         "base_model": "m", "quant": "nf4", "decoding": "greedy",
                         "max_new_tokens": 8, "history_tokens": 256, **summary})
    assert "| prompt | 1.00 | 1.00 | 0.00 | 1.00 | +1.00 (met) | +0.00 (met) |" in table


def test_a_missed_target_and_a_failed_answer_are_reported_not_hidden():
    ways = {"first": {}, "with_history": {"recall": 0.5}, "without_history": {"recall": 0.4},
            "standalone": {"recall": 0.8}}
    assert ev.targets(ways) == {"standalone_minus_with": 0.3, "within_standalone": False,
                                "with_minus_without": 0.1, "above_without": False, "met": False}
    assert ev.targets({**ways, "standalone": {"recall": None}})["met"] is None

    class Broken(FakePipeline):
        def ask(self, question, **kw):
            if kw.get("history"):
                raise StrataError("the history is too long")
            return super().ask(question, **kw)

    conversations = [ev._conversation("f:1", 1, TOILETS)]
    rows = ev.answer_conversations(Broken(), conversations, ["prompt"], None,
                                   SamplingParams(), "s")
    failed = next(r for r in rows if r["way"] == "with_history")
    assert failed["error"] == "the history is too long" and failed["recall"] is None
    ways = ev.summarise(rows, ["prompt"])["per_mode"]["prompt"]["ways"]
    assert ways["with_history"]["errors"] == 1 and ways["with_history"]["recall"] is None


# --- the whole run on a tiny model ---------------------------------------------------------
def test_a_run_on_a_tiny_model_writes_its_files_and_one_ledger_row_per_answer(
        tmp_path, tiny_base, adapters_dir):
    services = tiny_services(tmp_path, tiny_base, adapters_dir,
                             "# Rebates\n\nA dual-flush toilet earns a rebate of 45.75 pounds. "
                             "Rebates are capped at 320 pounds a year.\n")
    path = write_lines(tmp_path / "c.jsonl", TOILETS)
    summary = ev.evaluate_conversations(services, path, tmp_path / "out", modes="prompt",
                                        max_new_tokens=3, show_bar=False)
    assert summary["decoding"].startswith("greedy") and summary["n_follow_ups"] == 1
    saved = json.loads((tmp_path / "out" / "conversations.json").read_text())
    assert len(saved["rows"]) == 4 and not any(r["error"] for r in saved["rows"])
    with_ = next(r for r in saved["rows"] if r["way"] == "with_history")
    assert with_["standalone_query"].startswith("What rebate") and with_["history_turns"] >= 1
    assert "| prompt |" in (tmp_path / "out" / "conversations.md").read_text()
    assert len(services.ledger.rows()) == 4


def test_the_command_takes_one_file_a_run(tmp_path, capsys):
    from assistant.cli import main

    path = write_lines(tmp_path / "c.jsonl", TOILETS)
    assert main(["eval", "--questions", str(path), "--conversations", str(path),
                 "--out", str(tmp_path / "out")]) != 0
    assert "one per run" in capsys.readouterr().err
