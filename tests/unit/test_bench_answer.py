"""The answer benchmark's figures and report on synthetic timings (no server, no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import bench_answer as answer

FLOORS = {(400, 20): {"1": {"ttft_s": 0.5, "total_s": 0.8}, "2": {"ttft_s": 0.3, "total_s": 1.0}},
          (60, 10): {"1": {"ttft_s": 0.05, "total_s": 0.2}, "2": {"ttft_s": 0.04, "total_s": 0.1}}}


def rec(model, question, total, tokens=10, prompt=60, text="t", **extra):
    """A streamed answer's record, with the floor measured for its token counts (if any)."""
    floor = FLOORS.get((prompt, tokens))
    return {"model": model, "question": question, "ttft_s": total / 2, "total_s": total,
            "prompt_tokens": prompt, "completion_tokens": tokens, "text": text,
            **({"floor_by_threads": floor} if floor else {}), **extra}


def test_an_answers_floor_is_the_faster_thread_count():
    assert answer.answer_floor(rec("m", "q", 1.0, 20, 400)) == {"ttft_s": 0.5, "total_s": 0.8}
    assert answer.answer_floor(rec("m", "q", 1.0, 10, 60))["total_s"] == 0.1
    assert answer.answer_floor(rec("m", "q", 1.0, 5, 60)) is None  # none measured
    gave_up = {"floor_by_threads": {"1": {"ttft_s": 0.2, "total_s": 0.9},
                                    "2": {"ttft_s": 0.1, "total_s": None, "gave_up_s": 0.95}}}
    assert answer.answer_floor(gave_up) == {"ttft_s": 0.2, "total_s": 0.9}


def test_a_modes_figure_is_the_median_of_its_answers_ratios_and_the_target_judges_it():
    records = [rec("strata-prompt", "a", 1.2, 20, 400, retrieval_ms=300.0, rerank_tokens=400),
               rec("strata-prompt", "b", 0.2, 10, 60, retrieval_ms=100.0, rerank_tokens=200),
               rec("strata-prompt", "c", 0.3, 10, 60, retrieval_ms=0.0),
               {"model": "strata-prompt", "question": "d", "error": "APIError", "total_s": 9}]
    m = answer.mode_summary(records)
    # ratios 1.2/0.8 = 1.5, 0.2/0.1 = 2, 0.3/0.1 = 3: the median is 2
    assert m["ratio"] == 2.0 and m["meets"] is False
    assert (m["answers"], m["errors"]) == (4, 1)
    assert m["total_s"] == 0.3 and m["floor_s"] == 0.1 and m["prompt_tokens"] == 60
    assert m["rerank_tokens"] == 200  # an answer without re-ranking counts as 0
    assert m["before_generation_share"] == pytest.approx(0.25)  # 0.25, 0.5, 0
    assert records[0]["ratio"] == 1.5 and records[0]["floor_s"] == 0.8
    fast = answer.mode_summary([rec("x", "a", 0.15)])
    assert fast["ratio"] == 1.5 and fast["meets"] is True  # 1.5x is within the target
    assert answer.mode_summary([])["ratio"] is None


def test_concurrency_is_answer_tokens_per_wall_second_against_serial_with_p95():
    serial = [rec("a", "q1", 1.0, 10, text="x"), rec("b", "q1", 1.0, 30, text="y")]
    s = answer.level_summary(serial, 2.0)
    assert s["tokens_per_s"] == 20.0 and s["clients"] == 1 and "speedup" not in s
    burst = [rec("a", "q1", t, 10, text="x", client=n % 4) for n, t in enumerate(
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
         16.0, 17.0, 18.0, 19.0, 20.0])]
    burst[0] = burst[0] | {"text": "other"}
    burst.append({"model": "b", "question": "q1", "error": "429", "total_s": 0.1,
                  "client": 3})
    lv = answer.level_summary(burst, 5.0, serial, s["tokens_per_s"])
    assert lv["tokens_per_s"] == 40.0 and lv["speedup"] == 2.0  # 200 tokens / 5 s
    assert lv["p95_s"] == 19.0 and lv["p50_s"] == 10.0  # nearest rank, errors left out
    assert (lv["requests"], lv["errors"], lv["clients"]) == (21, 1, 4)
    assert lv["same_text_as_serial"] == 19
    assert [r.get("same_as_serial") for r in lv["records"][:2]] == [False, True]
    assert all("text" not in r for r in lv["records"])  # answers' text is not kept


def test_the_mix_asks_every_question_of_every_model_and_options_parse():
    assert answer.mix(["q1", "q2"], ["a", "b"]) == [("a", "q1"), ("b", "q1"), ("a", "q2"),
                                                   ("b", "q2")]
    assert answer.options([]) == {"questions": 6, "levels": (8, 16), "rounds": 1,
                                  "second_adapter": None}
    chosen = answer.options(["--questions", "2", "--concurrency", "2,0", "--rounds", "3"])
    assert chosen["questions"] == 2 and chosen["levels"] == (2,) and chosen["rounds"] == 3
    assert answer.options(["--concurrency", "0"])["levels"] == ()


def test_the_note_says_when_the_machine_was_shared():
    assert answer.shared_note([0.3, 0.2, 0.1], 2) is None
    assert "shared" in answer.shared_note([5.1, 4.0, 3.0], 2)


def test_a_result_renders_its_tables_and_targets():
    modes = {mode: answer.mode_summary([rec(model, "a", 0.15, retrieval_ms=30.0,
                                            rerank_tokens=400 if mode != "adapter" else 0)]
                                       ) | {"model": model}
             for mode, model in (("prompt", "strata-prompt"), ("adapter", "w"),
                                 ("layered", "strata-layered"))}
    serial = [rec("a", "q1", 1.0, 10)]
    result = {
        "questions": 1, "questions_file": "q.jsonl",
        "server": {"engine": "answers come from llamacpp (the default engine)",
                   "rss_mb": {"after_warmup_mb": 900.0, "after_run_mb": 950.0, "peak_mb": 990.0}},
        "floor": {"llama_cpp": "0.3.16", "threads": {
            n: {"extra_buffers": False, "logits_correlation": 0.9993} for n in ("1", "2")}},
        "target_ratio": answer.TARGET_RATIO, "modes": modes,
        "concurrency": {"mix": ["w", "w-half", "strata-base"], "rounds": 1,
                        "serial": answer.level_summary(serial, 1.0),
                        "levels": {"8": answer.level_summary(
                            [rec("a", "q1", 2.0, 10, client=n) for n in range(8)], 2.0, serial,
                            10.0)},
                        "target_speedup": 3.0, "target_clients": 8},
        "load_average": {"start": [4.0, 3.0, 2.0], "end": [5.0, 4.0, 3.0], "cores": 2},
        "note": answer.shared_note([4.0], 2)}
    json.dumps(result)  # the result file is JSON
    text = answer.markdown(result)
    assert "| prompt | 60 | 10 | 0.07 s | 0.15 s | 0.10 s | 1.50x | 20% | yes |" in text
    assert "weights as stored (the repacked ones disagreed), logits r=0.9993" in text
    assert "400 tokens in prompt" in text
    assert "| 8 | 8 | 40.0 | 4.00x | 2.00 s | 2.00 s | 8 of 8 | 0 |" in text
    assert "Target: 8 clients >= 3.0x serial answer tokens/s: 4.00x, met." in text
    assert "Note: the machine was shared" in text


def test_the_benchmark_is_registered_with_its_freshness_rule_and_block():
    from bench import freshness, readme
    from bench.run import available

    root = Path(__file__).resolve().parents[2]
    assert "answer" in available() and "bench:answer" in readme.BLOCKS
    assert "bench/results/answer.json" in freshness.MEASURES
    assert "<!-- bench:answer -->" in (root / "docs" / "benchmarks.md").read_text()


def test_bench_run_hands_a_benchmark_its_options_and_records_them_in_the_command(
        monkeypatch, tmp_path):
    import types

    from bench import run as bench_run

    got = {}

    def run(quick=False, **chosen):
        got.update(chosen)
        return {"ok": True}

    module = types.SimpleNamespace(run=run, options=answer.options)
    monkeypatch.setattr(bench_run.importlib, "import_module", lambda name: module)
    monkeypatch.setattr(bench_run, "RESULTS", tmp_path)
    assert bench_run.main(["answer", "--questions", "2", "--concurrency", "2",
                           "--no-readme"]) == 0
    assert got["questions"] == 2 and got["levels"] == (2,)
    meta = json.loads((tmp_path / "answer.json").read_text())["_meta"]
    assert meta["command"] == "python -m bench.run answer --questions 2 --concurrency 2"
