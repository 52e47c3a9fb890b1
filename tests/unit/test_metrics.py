"""The one metrics table: one name per figure, one aggregator for the ledger and the
evaluation, the verdict's directions, the card's figures, and the plots and CSV both the
Metrics tab and the report (or the ledger) share."""

from __future__ import annotations

import csv
import inspect
import io
from dataclasses import replace

import pytest

from assistant.evaluation import plots
from assistant.evaluation.report import verdict
from assistant.ledger import metrics
from assistant.ledger.metrics import CARD_METRICS, METRICS, card_figures, summarise
from assistant.ledger.store import ANSWER_COLUMNS, AnswerRecord, Ledger, csv_text

# Names that meant the same figure as a canonical one before the table existed.
RETIRED = {"n", "quoted_share"}


def eval_row(**kw):
    row = {"error": None, "out_of_scope": False, "recall": 1.0, "similarity": 0.5,
           "generated_recall": 0.5, "declined": False, "grounding": None, "chosen_mode": "prompt",
           "prompt_tokens": 10, "rerank_tokens": 0, "completion_tokens": 4, "ttft_ms": 10.0,
           "total_ms": 100.0, "tokens_per_s": 5.0, "cost_usd": 1e-5, "token_cost_usd": 4e-6,
           "compute_cost_usd": 6e-6}
    return {**row, **kw}


@pytest.fixture
def ledger(ledger_at):
    led = Ledger(ledger_at)  # SQLite, and PostgreSQL in the scale tier
    yield led
    led.close()


def test_every_metric_says_how_it_aggregates_and_reads():
    for name, m in METRICS.items():
        assert m.name == name and m.label and m.short
        assert m.aggregate in metrics.AGGREGATES and m.rows in metrics.ROWS
        assert m.column or m.derive or m.aggregate == "count", name
    assert not RETIRED & set(METRICS)
    assert METRICS["p50_total_ms"].higher_is_better is False
    assert METRICS["recall"].higher_is_better is True and METRICS["count"].higher_is_better is None
    assert set(CARD_METRICS) <= set(METRICS)


def test_ledger_and_evaluation_summaries_use_the_one_table(ledger):
    """The ledger's stats and the evaluation's summary: the same names, the same numbers
    for the same answers (before, `count`/`n` and `quoted_share`/`quoted_rate` differed)."""
    checks = ["grounded", "quoted: not in the documents: 9", "unchecked", None]
    eval_rows = [eval_row(grounding=g, total_ms=100.0 * (i + 1), cost_usd=0.25)
                 for i, g in enumerate(checks)]
    eval_rows.append(eval_row(error="StrataError: boom", cost_usd=None))
    for r in eval_rows:
        ledger.record(AnswerRecord(question="q", **{k: r[k] for k in (
            "error", "grounding", "chosen_mode", "prompt_tokens", "completion_tokens",
            "ttft_ms", "total_ms", "tokens_per_s", "cost_usd", "token_cost_usd",
            "compute_cost_usd")}))
    from_ledger = ledger.summary()
    from_eval = summarise(eval_rows, scope="eval")
    assert set(from_ledger) == {n for n, m in METRICS.items() if m.scope == "answers"}
    assert list(from_eval) == list(METRICS)
    assert {k: from_eval[k] for k in from_ledger} == from_ledger
    assert from_ledger["count"] == 5 and from_ledger["errors"] == 1
    assert from_ledger["quoted_rate"] == 0.5  # of the two checked answers, one was quotes
    assert from_ledger["p50_total_ms"] == 250 and from_ledger["total_cost_usd"] == 1.0
    assert from_eval["chosen_modes"] == {"prompt": 4}


def test_the_evaluation_scores_in_and_out_of_scope_separately():
    rows = [eval_row(recall=1.0), eval_row(recall=0.0, declined=True),
            eval_row(out_of_scope=True, recall=None, declined=True),
            eval_row(out_of_scope=True, recall=None, declined=False)]
    s = summarise(rows, scope="eval")
    assert (s["in_scope"], s["out_of_scope"]) == (2, 2)
    assert (s["recall"], s["decline_rate"], s["false_decline_rate"]) == (0.5, 0.5, 0.5)
    assert s["quoted_rate"] is None  # nothing was checked
    with pytest.raises(ValueError, match="unknown metrics scope"):
        summarise(rows, scope="everything")


def test_show_formats_from_the_table():
    assert METRICS["p50_total_ms"].show(412.4) == "412 ms"
    assert METRICS["p50_total_ms"].show(412.4, unit=False) == "412"
    assert METRICS["decline_rate"].show(0.25) == "25%"
    assert METRICS["mean_cost_usd"].show(1e-5) == "$0.0000100"
    assert METRICS["recall"].show(None) == "-"


def test_the_verdict_ranks_by_the_tables_direction(monkeypatch):
    per_mode = {"fast": {"p50_total_ms": 100.0}, "slow": {"p50_total_ms": 900.0}}
    assert verdict(per_mode)["latency"]["winner"] == "fast"
    assert "(p50 total latency 100 ms; next slow 900 ms)" in verdict(per_mode)["latency"]["text"]
    flipped = {**METRICS, "p50_total_ms": replace(METRICS["p50_total_ms"], higher_is_better=True)}
    monkeypatch.setattr("assistant.evaluation.report.METRICS", flipped)
    assert verdict(per_mode)["latency"]["winner"] == "slow"


def test_card_figures_are_flat_canonical_names():
    per_mode = {"adapter": {"recall": 0.123456789, "similarity": None, "decline_rate": 0.5,
                            "p50_total_ms": 500.0, "mean_cost_usd": 1e-5, "count": 3}}
    assert card_figures(per_mode) == {"adapter_recall": 0.12345679, "adapter_similarity": None,
                                      "adapter_decline_rate": 0.5, "adapter_p50_total_ms": 500.0,
                                      "adapter_mean_cost_usd": 1e-5}


def _bar_heights(fig):
    return [round(p.get_height(), 6) for p in fig.axes[0].patches]


def test_the_tab_and_the_report_draw_latency_and_tokens_with_the_same_functions(ledger):
    from assistant.evaluation import report
    from assistant.ui import metrics as tab

    for ms in (100.0, 300.0):
        ledger.record(AnswerRecord(question="q", chosen_mode="prompt", total_ms=ms, ttft_ms=ms / 10,
                                   prompt_tokens=30, completion_tokens=6))
    groups = tab.by_mode(ledger.stats(by="mode"))
    per_mode = {"prompt": summarise([dict(r) for r in ledger.rows()], scope="eval")}
    # the same figure from the ledger's stats (tab) and an evaluation summary (report)
    assert _bar_heights(plots.latency_figure(groups)) == _bar_heights(
        plots.latency_figure(per_mode)) == [0.02, 0.2, 0.29]
    assert _bar_heights(plots.tokens_figure(groups)) == [30.0, 6.0]
    for module in (tab, report):  # neither draws its own any more
        source = inspect.getsource(module)
        assert "def latency_figure" not in source and "def plot_latency" not in source
        assert "def tokens_figure" not in source and "def plot_tokens" not in source


def test_the_ledger_csv_is_written_once_for_the_command_and_the_tab(ledger, tmp_path):
    from assistant.ui import metrics as tab

    ledger.record(AnswerRecord(question="one, two", retrieved=[{"id": "a", "score": 0.5}]))
    out = tmp_path / "out.csv"
    ledger.to_csv(out)
    text = csv_text(ledger.rows())
    assert out.read_bytes().decode("utf-8") == text  # the same bytes, CRLF rows as csv writes
    assert next(csv.reader(io.StringIO(text))) == ANSWER_COLUMNS
    assert "DictWriter" not in inspect.getsource(tab)  # the tab calls csv_text
