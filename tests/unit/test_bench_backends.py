"""The backends benchmark's arithmetic: the workload plan, one cell's figures from ledger
rows, the comparison between backends and its table (synthetic rows; no model, no server)."""

from __future__ import annotations

from bench import bench_backends as bench


def row(ttft, total, tokens=32, backend="local", adapter=None, mode="base", error=None):
    return {"ttft_ms": ttft, "total_ms": total, "completion_tokens": tokens, "backend": backend,
            "adapter": adapter, "chosen_mode": mode, "error": error}


def cell(tokens_per_s, total_p50):
    return {"tokens_per_s": tokens_per_s, "total_ms": {"p50": total_p50, "p95": total_p50}}


def test_the_plan_cycles_two_adapters_and_the_base_and_asks_every_question():
    asked = [f"q{i}" for i in range(12)]
    cycle = bench.mix("a", "b")
    one = bench.plan(asked, 1, cycle)
    assert len(one) == 1 and [q for q, _, _ in one[0]] == asked
    assert [a or m for _, m, a in one[0][:3]] == ["a", "b", "base"]
    eight = bench.plan(asked, 8, cycle)
    assert [len(c) for c in eight] == [3] * 8
    flat = [r for c in eight for r in c]
    assert {q for q, _, _ in flat} == set(asked)
    assert sorted(a or m for _, m, a in flat).count("base") == 8  # a third each


def test_a_cell_is_read_off_its_ledger_rows_failures_counted_apart():
    rows = [row(100, 1000, adapter="a", mode="adapter"), row(200, 2000, adapter="b",
            mode="adapter"), row(300, 3000), row(400, 4000),
            row(None, 50, tokens=0, error="StrataError: refused")]
    out = bench.aggregate(rows, wall_s=4.0, client_ttft_ms=[110, 220, 330, 440])
    assert (out["answers"], out["errors"]) == (4, 1)
    assert out["answers_per_s"] == 1.0 and out["tokens_per_s"] == 32.0
    assert out["ttft_ms"] == {"p50": 300, "p95": 400}
    assert out["total_ms"] == {"p50": 3000, "p95": 4000}
    assert out["client_ttft_ms"] == {"p50": 330, "p95": 440}
    assert out["by_model"] == {"a": 1, "b": 1, "base": 2}
    assert out["backends"] == ["local"] and out["mean_completion_tokens"] == 32.0


def test_an_empty_cell_gives_no_percentiles_instead_of_failing():
    out = bench.aggregate([], wall_s=1.0)
    assert out["answers"] == 0 and out["ttft_ms"] == {"p50": None, "p95": None}
    assert out["mean_completion_tokens"] is None


def test_the_comparison_names_each_winner_and_where_the_lead_changes_hands():
    cells = {"local": {"1": cell(20, 1500), "2": cell(30, 2000), "4": cell(50, 3000),
                       "8": cell(60, 4000)},
             "openai": {"1": cell(10, 3000), "2": cell(40, 1800), "4": cell(45, 3100),
                        "8": cell(80, 3500)}}
    verdict = bench.compare(cells)
    assert verdict["turns_at_clients"] == 2 and verdict["lead_changes_at"] == [2, 4, 8]
    assert verdict["by_clients"]["1"] == {"throughput_winner": "local",
                                          "local_over_openai_tokens_per_s": 2.0,
                                          "close": False, "lower_total_p50": "local"}
    assert verdict["by_clients"]["4"]["close"] and not verdict["by_clients"]["8"]["close"]
    assert verdict["by_clients"]["8"]["throughput_winner"] == "openai"
    said = bench.notes(verdict, "mixed")
    assert said[0].startswith("mixed, 1 client: local 2.00x vLLM's tokens/s; ")
    assert said[2].startswith("mixed, 4 clients: local 1.11x vLLM's tokens/s (close")
    assert said[-1] == ("mixed, the throughput lead changes hands at 2 and again at 4 and "
                        "again at 8 clients")
    steady = bench.compare({"local": {"1": cell(20, 1)}, "openai": {"1": cell(10, 2)}})
    assert steady["turns_at_clients"] is None
    assert bench.notes(steady)[-1].startswith("local leads on throughput at every client count")


def test_the_table_has_a_row_per_backend_and_client_count():
    agg = bench.aggregate([{**row(100, 1000), "ranking": "embedding"}], wall_s=1.0,
                          client_ttft_ms=[120])
    assert agg["rankings"] == ["embedding"]
    cells = {"local": {"1": {**agg, "load_average_1m_before": 1.5}},
             "openai": {"1": {**agg, "load_average_1m_before": 2.0}}}
    result = {"questions": 12, "new_tokens": 32, "local": {"quant": "nf4", "max_batch": 8},
              "openai": {"server": "vllm", "dtype": "bfloat16"}, "notes": ["a note"],
              "workloads": {"mixed": {"mix": ["a", "b", "base"], "cells": cells}}}
    text = bench.markdown(result)
    assert "Clients cycle mixed: a, b, base." in text
    assert ("| mixed | local | 1 | 1 | 1.00 | 32.0 | 100 / 100 ms | "
            "120 / 120 ms | 1000 / 1000 ms | embedding | 0 | 1.5 |") in text
    assert "| vLLM | 1 |" in text and "- a note" in text


def test_prompt_mode_is_added_on_request_at_one_and_eight_clients(monkeypatch):
    monkeypatch.delenv("BENCH_BACKENDS_PROMPT", raising=False)
    assert list(bench.workloads(quick=False)) == [bench.MIXED]
    assert bench.workloads(quick=True)[bench.MIXED]["clients"] == (1, 8)
    monkeypatch.setenv("BENCH_BACKENDS_PROMPT", "1")
    full = bench.workloads(quick=False)
    assert full["prompt"] == {"cycle": [("prompt", None)], "clients": (1, 8)}
    assert full[bench.MIXED]["clients"] == (1, 2, 4, 8)


def test_the_load_note_gives_the_spread_over_every_cell():
    cells = {"local": {"mixed": {"1": {"load_average_1m_before": 7.5},
                                 "8": {"load_average_1m_before": 9.0}}},
             "openai": {"mixed": {"1": {"load_average_1m_before": 6.25}}}}
    assert "load average before the cells: 6.25-9.0 on" in bench.load_note(cells)
