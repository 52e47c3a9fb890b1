"""The benchmark helpers that feed README.md and docs/: the runner, tables, the blocks that
render results (the research scripts' own tests: test_research.py)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.bench_models import peak_rss_mb

ROOT = Path(__file__).resolve().parents[2]


def test_peak_rss_of_a_child_is_its_own_not_its_parents(tmp_path):
    """ru_maxrss survives fork and exec: a child of a big parent reported the parent's peak."""
    import subprocess
    import sys

    ballast = bytearray(400 * 2**20)  # make this (parent) process big before forking
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch the pages so they are resident
    parent = peak_rss_mb()
    child = float(subprocess.run(
        [sys.executable, "-c", "from bench.bench_models import peak_rss_mb; print(peak_rss_mb())"],
        capture_output=True, text=True, check=True, cwd=ROOT).stdout)
    assert parent > 400
    assert child < parent - 300, (child, parent)


def test_context_table_states_both_rankings_and_the_re_ranking_cost():
    from bench.bench_context import markdown

    text = markdown({
        "questions": 120, "questions_file": "qa/test.jsonl",
        "answer_in_context": {"48": 0.375, "80": 0.642},
        "answer_in_quote": {"1": 0.592, "2": 0.767}, "rerank_candidates": 6,
        "answer_in_quote_without_rerank": {"1": 0.533, "2": 0.692},
        "rank_ms": {"p50": 301.4, "p95": 402.0}, "mean_rerank_tokens": 412.3})
    assert "| answer in the context | 0.38 | 0.64 |" in text
    assert "1 sentence 0.59, 2 sentences 0.77; by the embedding ranking alone" in text
    assert "without re-ranking: 0.53, 0.69. Ranking and re-ranking the best 6" in text
    assert "p50 301 ms, p95 402 ms per question; the re-ranker read 412 tokens." in text


def test_a_benchmark_that_cannot_run_here_is_skipped_and_the_rest_still_run(monkeypatch, tmp_path):
    import types

    from bench import run as bench_run

    ran = []

    def module(name, skip):
        def run(quick=False):
            if skip:
                raise bench_run.Skipped("no optional environment")
            ran.append(name)
            return {"ok": True}
        return types.SimpleNamespace(run=run)

    modules = {"bench.bench_a": module("a", True), "bench.bench_b": module("b", False)}
    monkeypatch.setattr(bench_run.importlib, "import_module", lambda name: modules[name])
    monkeypatch.setattr(bench_run, "RESULTS", tmp_path)
    assert bench_run.main(["a", "b", "--no-readme"]) == 0
    assert ran == ["b"] and (tmp_path / "b.json").is_file() and not (tmp_path / "a.json").exists()


def test_an_earlier_verdict_is_one_sentence_of_its_own_figures():
    from bench.readme import ROOT, _earlier_verdict

    text = _earlier_verdict({
        "runs": {"adapter": "synth-model"},
        "handwritten_recall": {"adapter": 0.125}, "synthesized_recall": {"adapter": 0.7},
        "baseline": {"share": 0.2}, "wording": {"phrasings_synthesized": 3.5,
                                                "overlap_synthesized": 0.07}},
        ROOT / "bench" / "v.json", "model rewordings")
    assert text.startswith("Trained on model rewordings (`synth-model`, `bench/v.json`)")
    assert "adapter recall 0.12 on the hand-written" in text
    assert "0.70 on the synthesized" in text and "(20% of" in text
    assert "3.5 phrasings per fact" in text and text.endswith("overlap 0.07.")


def test_the_synth_verdict_is_a_table_and_a_sentence_and_its_history_a_paragraph(
        monkeypatch, tmp_path):
    """README: the newest verdict's table and one sentence; docs/evaluation.md: the same, then
    what the newest one measured besides and one sentence per earlier verdict."""
    from bench import readme

    def verdict(name, adapter_recall):
        path = tmp_path / name / "verdict.json"
        path.parent.mkdir()
        path.write_text(json.dumps({
            "text": f"| mode | x |\n|---|---|\n| adapter | {adapter_recall} |\n\nprose",
            "same_order": True, "within_tolerance": False, "tolerance": 0.1,
            "runs": {"adapter": name}, "handwritten_recall": {"adapter": adapter_recall},
            "synthesized_recall": {"adapter": 0.7},
            "baseline": {"share": adapter_recall / 0.6, "adapter_recall": adapter_recall,
                         "baseline_recall": 0.6, "target_share": 0.7}}))
        return path

    monkeypatch.setattr(readme, "ROOT", tmp_path)
    monkeypatch.setattr(readme, "RESEARCH", tmp_path)
    monkeypatch.setattr(readme, "HISTORY", tmp_path / "docs" / "evaluation.md")
    monkeypatch.setattr(readme, "SYNTH_ABLATION", tmp_path / "none.json")
    monkeypatch.setattr(readme, "SYNTH_VERDICTS", [
        (tmp_path / "newest" / "verdict.json", "new rules"),
        (verdict("older", 0.1), "old rules")])
    block = readme._synth_verdict(tmp_path)  # the newest is not there yet: the older one
    assert block.startswith("| mode | x |\n|---|---|\n| adapter | 0.1 |\n\nThe adapter")
    verdict("newest", 0.3)
    block = readme._synth_verdict(tmp_path)
    table, sentence = block.rstrip("\n").split("\n\n")
    assert table == "| mode | x |\n|---|---|\n| adapter | 0.3 |"
    assert "\n" not in sentence and ". " not in sentence and sentence.endswith(").")
    assert sentence.startswith("The adapter trained only on synthesized pairs reached 50% of")
    assert "same order of the modes: yes, every mode within 0.10: **no**" in sentence
    assert "`newest/verdict.json`" in sentence and "python -m bench.readme" in sentence
    assert "(docs/evaluation.md#from-documents-to-a-verdict" in sentence
    history = readme._synth_history(tmp_path / "docs")
    assert history.startswith("Training pairs of the verdict above (`newest`): new rules.")
    assert "Trained on old rules (`older`, `older/verdict.json`): adapter recall 0.10" in history
    assert "\n" not in history.rstrip("\n")  # one paragraph
    assert history.rstrip().endswith("are kept: [research/README.md](../README.md)).")


def test_a_recall_target_is_met_only_when_shown_and_own_words_both_meet_it():
    from bench.readme import _recall_target

    quoted = {"recall": 0.72, "generated_recall": 0.25, "quoted_rate": 0.86}
    measured, met = _recall_target(quoted, 0.70)
    assert measured == "0.72; own words 0.25, 86% of answers quoted"
    assert met == "shown: yes; own words: **no**"
    assert _recall_target({**quoted, "generated_recall": 0.71}, 0.70)[1] == "yes"
    assert _recall_target({"recall": 0.63, "generated_recall": 0.63, "quoted_rate": None},
                          0.60) == ("0.63", "yes")  # never checked: one figure


def test_the_decode_target_is_judged_by_the_default_engine_not_the_fastest():
    from bench.bench_decode import default_engine, markdown

    engines = {"llama.cpp": {"tokens_per_s": 100.0, "quant": "Q4_1", "ttft_ms": 1.0,
                             "ratio_to_llama_cpp": 1.0},
               "strata-nf4": {"tokens_per_s": 30.0, "quant": "nf4", "ttft_ms": 1.0,
                              "ratio_to_llama_cpp": 0.3},
               "strata-llamacpp": {"tokens_per_s": 104.0, "quant": "Q4_1", "ttft_ms": 1.0,
                                   "ratio_to_llama_cpp": 1.04}}
    result = {"new_tokens": 8, "model": "m", "gguf": "g", "prompt_tokens": 4, "threads": 1,
              "engines": engines, "target_ratio": 0.5, "best_ratio": 1.04, "meets": True}
    assert default_engine() == "strata-llamacpp"  # ASSISTANT_BACKEND=auto
    text = markdown({**result, "default_engine": "strata-nf4"})  # before llama.cpp was
    assert "(`strata-nf4`," in text and "0.3x, **missed**" in text
    assert "Fastest engine: `strata-llamacpp`, 1.04x (opt-in" in text
    text = markdown(result)  # a result that did not record it: today's default judges it
    assert "(`strata-llamacpp`," in text and "1.04x, met" in text and "opt-in" not in text


def test_clients_run_together_and_the_wall_time_is_their_work_together():
    """The throughput benchmarks' clients (bench/together.py): released at once, so three
    clients that each wait 0.2 s take about 0.2 s in all, not 0.6."""
    import time

    from bench.together import pct, run_together, spread

    seen: list[int] = []
    wall = run_together(3, lambda n: (time.sleep(0.2), seen.append(n)))
    assert sorted(seen) == [0, 1, 2] and 0.19 < wall < 0.5
    assert pct([4.0, 1.0, 3.0, 2.0], 0.5) == 3.0 and spread([]) == {"p50": None, "p95": None}
