"""`assistant eval` on a tiny model: scores, files, ledger rows, break-even, card, refusals."""

from __future__ import annotations

import csv
import json
import math

import pytest

from assistant.answering.modes import Mode
from assistant.errors import AdapterError, StrataError
from assistant.evaluation import run as ev
from assistant.evaluation.report import markdown_table, readme_markdown, verdict
from assistant.ledger import costs
from tests.tiny_models import tiny_services

FEES = (
    "# Fees\n\n## Connection\n\nThe new connection fee is 148.50 pounds. "
    "Applications take 17 working days.\n\n## Meters\n\nMeters are read every quarter.\n"
)
QUESTIONS = [
    {"question": "What is the new connection fee?",
     "answer": "The new connection fee is 148.50 pounds.", "must_contain": ["148.50"],
     "source": "fees.md", "fact_id": "fee"},
    {"question": "How long does an application take?",
     "answer": "Applications take 17 working days.", "must_contain": ["17", "working days"],
     "source": "fees.md", "fact_id": "days"},
    {"question": "What is the capital of Peru?", "answer": "The documents do not say.",
     "must_contain": [], "source": None, "fact_id": "oos-1", "out_of_scope": True},
]
CARD_MD = ("# Adapter `alpha`\n\n## Evaluation\n\nNot evaluated yet.\n\n"
           "## Example questions\n\n- fee?\n")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def services(tmp_path, tiny_base, adapters_dir):
    services = tiny_services(tmp_path, tiny_base, adapters_dir, FEES)
    alpha = adapters_dir / "alpha"
    (alpha / "profile.json").write_text(json.dumps(
        {"name": "alpha", "description": "water fees", "examples": ["what is the fee"]}))
    (alpha / "card.json").write_text(json.dumps({"name": "alpha", "seconds": 60.0, "eval": None}))
    (alpha / "card.md").write_text(CARD_MD)
    return services


@pytest.fixture
def questions(tmp_path):
    return write_jsonl(tmp_path / "qa.jsonl", QUESTIONS)


# --- scoring ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, must, expected", [
    ("The fee is £148.50.", ["148.50"], 1.0),
    ("Ask office WC-12 about it", ["wc-12"], 1.0),
    ("It takes 17 days.", ["17", "working days"], 0.5),
    ("It takes 17  WORKING\ndays.", ["17", "working days"], 1.0),
    ("No idea.", ["148.50"], 0.0),
    ("Founded by 23 households.", ["23"], 1.0),
    ("It has existed since 2023 and costs 1148.50.", ["23", "148.50"], 0.0),
    ("anything", [], None),
])
def test_fact_recall_is_the_share_of_required_strings_case_insensitive(text, must, expected):
    assert ev.fact_recall(text, must) == expected


@pytest.mark.parametrize("text, expected", [
    ("The documents do not say.", True),
    ("I don\u2019t know the answer.", True),
    ("That information is not in the documents [1].", True),
    ("There is no information about solar panels.", True),
    ("The new connection fee is 148.50 pounds [1].", False),
    ("Lima is the capital of Peru.", False),
])
def test_declines_detects_the_documented_phrases(text, expected):
    assert ev.declines(text) is expected


def test_parse_modes_keeps_order_drops_repeats_and_refuses_unknown_modes():
    modes = ev.parse_modes("adapter, prompt,adapter")
    assert modes == [Mode.ADAPTER, Mode.PROMPT] and all(type(m) is Mode for m in modes)
    with pytest.raises(StrataError, match="unknown mode 'sideways'"):
        ev.parse_modes("base,sideways")


def test_the_adapter_goes_to_the_modes_that_may_use_it():
    assert [ev.adapter_for(m, "fees") for m in Mode] == ["fees", None, "fees", "fees", None]
    assert json.dumps({Mode.PROMPT: [Mode.BASE]}) == '{"prompt": ["base"]}'  # rows' modes


def test_break_even_formula_never_and_missing_modes():
    per_mode = {"prompt": {"mean_cost_usd": 3e-4}, "adapter": {"mean_cost_usd": 1e-4}}
    result = ev.break_even(per_mode, 0.01, "test")
    assert result["questions"] == 50 and result["saving_per_answer_usd"] == pytest.approx(2e-4)
    dearer = {"prompt": {"mean_cost_usd": 1e-4}, "adapter": {"mean_cost_usd": 2e-4}}
    assert ev.break_even(dearer, 0.01)["questions"] == "never"
    assert "Never" in ev.break_even(dearer, 0.01)["text"]
    assert ev.break_even({"prompt": {"mean_cost_usd": 1e-4}}, 0.01)["questions"] is None
    assert ev.break_even(per_mode, None, "unknown")["questions"] is None


def test_verdict_is_computed_from_the_numbers():
    def mode(recall, sim, p50, cost):
        return {"recall": recall, "similarity": sim, "p50_total_ms": p50, "mean_cost_usd": cost,
                "decline_rate": None}
    per_mode = {"prompt": mode(0.6, 0.5, 900.0, 3e-5), "adapter": mode(0.4, 0.7, 400.0, 1e-5),
                "layered": mode(0.6, 0.6, 1000.0, 4e-5)}
    result = verdict(per_mode)
    assert result["accuracy"]["winner"] == "layered"  # recall tie broken by similarity
    assert result["latency"]["winner"] == result["cost"]["winner"] == "adapter"
    assert "declining" not in result and "Accuracy: layered" in result["text"]


# --- the questions file ------------------------------------------------------------------
@pytest.mark.parametrize("line2, message", [
    ("{not json", ":2: not valid JSON"),
    ('["a list"]', ":2: expected a JSON object"),
    ('{"question": "q", "answer": "a"}', ":2: 'must_contain' must be a list"),
    ('{"question": "", "answer": "a", "must_contain": []}', ":2: 'question' must be"),
    ('{"question": "q", "answer": "a", "must_contain": [], "out_of_scope": "yes"}',
     ":2: 'out_of_scope' must be true or false"),
])
def test_a_malformed_questions_file_is_refused_naming_the_line(tmp_path, line2, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(QUESTIONS[0]) + "\n" + line2 + "\n")
    with pytest.raises(StrataError, match=message):
        ev.load_questions(path)


def test_missing_and_empty_files_and_limit(tmp_path, questions):
    with pytest.raises(StrataError, match="not found"):
        ev.load_questions(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(StrataError, match="no questions"):
        ev.load_questions(tmp_path / "empty.jsonl")
    loaded = ev.load_questions(questions, limit=2)
    assert [q.fact_id for q in loaded] == ["fee", "days"] and loaded[1].line == 2
    assert ev.load_questions(questions)[2].out_of_scope


def test_cli_refuses_bad_input_before_loading_a_model(tmp_path, questions, capsys):
    from assistant.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(QUESTIONS[0]) + "\n{oops\n")
    assert main(["eval", "--questions", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "bad.jsonl:2: not valid JSON" in capsys.readouterr().err
    assert main(["eval", "--questions", str(questions), "--modes", "base,magic",
                 "--out", str(tmp_path / "o"), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"].startswith("unknown mode 'magic'")
    assert not (tmp_path / "o").exists()


# --- a whole run -----------------------------------------------------------------------------
def test_eval_writes_every_output_with_sane_numbers(services, questions, tmp_path):
    services.ledger.record_training("alpha", seconds=30.0, cost_usd=0.02)
    calls = []
    out = tmp_path / "out"
    summary = ev.evaluate(services, questions, out, modes="base,prompt,adapter", adapter="alpha",
                          max_new_tokens=4, progress=lambda *a: calls.append(a))
    assert [c[:2] for c in calls] == [(i, 9) for i in range(1, 10)]
    for name in ("results.csv", "summary.json", "report.md", "accuracy_vs_cost.png",
                 "latency.png", "tokens.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "latency.png").read_bytes()[:4] == b"\x89PNG"

    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["per_mode"] == json.loads(json.dumps(summary["per_mode"]))
    assert summary["n_questions"] == 3 and summary["n_out_of_scope"] == 1
    for mode, s in summary["per_mode"].items():
        assert (s["count"], s["errors"], s["in_scope"], s["out_of_scope"]) == (3, 0, 2, 1), mode
        assert 0.0 <= s["recall"] <= 1.0 and 0.0 <= s["decline_rate"] <= 1.0
        assert -1.0 <= s["similarity"] <= 1.0 and s["mean_cost_usd"] > 0
        assert s["p50_total_ms"] <= s["p95_total_ms"] and s["chosen_modes"] == {mode: 3}

    be = summary["break_even"]
    assert be["training_cost_usd"] == pytest.approx(0.02) and "ledger" in be["training_cost_source"]
    per_mode = summary["per_mode"]
    saving = per_mode["prompt"]["mean_cost_usd"] - per_mode["adapter"]["mean_cost_usd"]
    assert be["saving_per_answer_usd"] == pytest.approx(saving)
    assert be["questions"] == ("never" if saving <= 0 else math.ceil(round(0.02 / saving, 6)))
    assert summary["verdict"]["accuracy"]["winner"] in ("base", "prompt", "adapter")

    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 9 and {r["mode"] for r in rows} == {"base", "prompt", "adapter"}
    # prompt mode's re-ranker read tokens; they are priced, and the split adds up
    assert any(int(r["rerank_tokens"]) > 0 for r in rows if r["mode"] == "prompt")
    assert all(int(r["rerank_tokens"]) == 0 for r in rows if r["mode"] != "prompt")
    for row in rows:
        priced = costs.estimate(int(row["prompt_tokens"]) + int(row["rerank_tokens"]),
                                int(row["completion_tokens"]), 0.0,
                                services.settings.base_model, services.settings)
        assert float(row["token_cost_usd"]) == pytest.approx(priced.token_usd)
        assert float(row["token_cost_usd"]) + float(row["compute_cost_usd"]) == pytest.approx(
            float(row["cost_usd"]))
        if row["out_of_scope"] == "True":
            assert row["recall"] == "" and row["declined"] in ("True", "False")
        else:
            assert 0.0 <= float(row["recall"]) <= 1.0
    report = (out / "report.md").read_text()
    assert "## Break-even" in report and "![Latency per mode](latency.png)" in report
    assert markdown_table(summary) in report
    readme = readme_markdown(summary)
    assert markdown_table(summary) in readme and summary["break_even"]["text"] in readme


def test_exactly_one_ledger_row_per_question_and_mode(services, questions, tmp_path):
    summary = ev.evaluate(services, questions, tmp_path / "out", modes=["prompt", "adapter"],
                          adapter="alpha", max_new_tokens=3, show_bar=False)
    ledger_rows = services.ledger.rows()
    assert len(ledger_rows) == 6  # the warm-up generation is not an answer
    assert {r["session_id"] for r in ledger_rows} == {summary["session_id"]}
    assert summary["session_id"].startswith("eval-")
    pairs = {(r["question"], r["requested_mode"]) for r in ledger_rows}
    assert pairs == {(q["question"], m) for q in QUESTIONS for m in ("prompt", "adapter")}


def test_retrieval_can_be_limited_to_some_domains(services, questions, tmp_path):
    """The app evaluates a domain on its own documents: nobody else's upload may answer."""
    seen = []
    search = services.store.search
    services.store.search = lambda *a, **k: seen.append(k.get("domains")) or search(*a, **k)
    summary = ev.evaluate(services, questions, tmp_path / "out", modes=["prompt"],
                          max_new_tokens=3, show_bar=False, domains=["elsewhere"])
    answers = seen[1:]  # seen[0]: the warm-up's search ("warm up"), never shown or recorded
    assert answers and all(d == ["elsewhere"] for d in answers)
    assert summary["domains"] == ["elsewhere"]
    rows = services.ledger.rows()
    assert rows and not any(r["retrieved"] for r in rows)  # nothing found, nothing quoted


def test_the_adapter_card_gets_the_scores(services, questions, tmp_path):
    import shutil

    shutil.rmtree(services.settings.adapters_dir / "beta")
    summary = ev.evaluate(services, questions, tmp_path / "out", modes="prompt,layered,auto",
                          max_new_tokens=3, show_bar=False)  # adapter found: the only one
    assert summary["adapter"] == "alpha"
    card = json.loads((services.settings.adapters_dir / "alpha" / "card.json").read_text())
    assert card["eval"]["layered_recall"] == pytest.approx(summary["per_mode"]["layered"]["recall"])
    assert card["eval"]["questions"] == str(questions) and card["eval"]["n_questions"] == 3
    assert card["name"] == "alpha"  # the rest of the card is kept
    # No ledger training: the card's duration priced by the cost model.
    assert "card.json seconds" in summary["break_even"]["training_cost_source"]
    md = (services.settings.adapters_dir / "alpha" / "card.md").read_text()
    assert "Not evaluated yet" not in md and '"layered_recall"' in md
    assert md.count("## Evaluation") == 1 and md.endswith("## Example questions\n\n- fee?\n")


def test_unknown_adapter_is_refused(services, questions, tmp_path):
    with pytest.raises(AdapterError, match="unknown adapter 'ghost'"):
        ev.evaluate(services, questions, tmp_path / "out", modes="adapter", adapter="ghost")
    assert services.ledger.rows() == []


def test_a_failed_answer_is_counted_recorded_once_and_the_run_goes_on(services, tmp_path):
    too_long = {**QUESTIONS[0], "question": "fee " * 1500}
    path = write_jsonl(tmp_path / "qa.jsonl", [too_long, QUESTIONS[1]])
    summary = ev.evaluate(services, path, tmp_path / "out", modes="base", max_new_tokens=3,
                          show_bar=False)
    s = summary["per_mode"]["base"]
    assert (s["count"], s["errors"], s["in_scope"]) == (2, 1, 1)
    rows = services.ledger.rows()
    assert len(rows) == 2 and sum(bool(r["error"]) for r in rows) == 1
    assert "too long" in (tmp_path / "out" / "results.csv").read_text()


def test_eval_reports_quoted_prompt_answers_and_the_models_own_recall(services, questions,
                                                                      tmp_path, monkeypatch):
    from tests.fakes import FakeStream

    # every mode's model 'answers' with a made-up fee: prompt mode must quote instead
    monkeypatch.setattr(services.generator, "stream", lambda *a, **k: FakeStream("It is £4.80."))
    summary = ev.evaluate(services, questions, tmp_path / "out", modes="base,prompt",
                          max_new_tokens=4)
    prompt, base = summary["per_mode"]["prompt"], summary["per_mode"]["base"]
    assert prompt["quoted_rate"] == 1.0 and prompt["generated_recall"] == 0.0
    assert prompt["recall"] > 0  # the quote holds 148.50 / 17 working days
    assert base["quoted_rate"] is None and base["generated_recall"] == base["recall"] == 0.0
    assert "In prompt mode 100% of the answers were quotes" in readme_markdown(summary)
    with (tmp_path / "out" / "results.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["mode"] == "prompt"]
    assert all(r["grounding"].startswith("quoted: not in the documents: 4.80") for r in rows)
