"""The benchmark helpers that feed README.md and docs/: recipe parsing, fact subsets, tables."""

from __future__ import annotations

import json

import pytest

from bench import training_recipes as recipes
from bench.bench_models import peak_rss_mb


def test_recipe_overrides_are_typed_and_unknown_keys_refused():
    assert recipes.parse_overrides(["epochs=5", "lr=2e-4", "targets=q_proj,v_proj"]) == {
        "epochs": 5, "lr": 2e-4, "targets": "q_proj,v_proj"}
    with pytest.raises(SystemExit, match="key=value"):
        recipes.parse_overrides(["epoch=5"])
    with pytest.raises(SystemExit, match="key=value"):
        recipes.parse_overrides(["epochs"])


def test_first_facts_keeps_every_phrasing_of_the_first_n_facts(tmp_path):
    rows = [{"question": f"q{i}{p}", "answer": "a", "fact_id": f"f{i}"}
            for i in range(4) for p in "abc"]
    source = tmp_path / "train.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, facts = recipes.first_facts(source, 2, tmp_path / "cut.jsonl")
    assert facts == {"f0", "f1"}
    kept = [json.loads(line)["question"] for line in out.read_text().splitlines()]
    assert kept == ["q0a", "q0b", "q0c", "q1a", "q1b", "q1c"]
    assert recipes.first_facts(source, 0, tmp_path / "all.jsonl")[1] == {"f0", "f1", "f2", "f3"}
    out, _ = recipes.first_facts(source, 2, tmp_path / "two.jsonl", phrasings=2)
    assert [json.loads(line)["question"] for line in out.read_text().splitlines()] == [
        "q0a", "q0b", "q1a", "q1b"]


def test_synthesized_pairs_of_the_chosen_facts_take_their_fact_ids(tmp_path):
    hand = tmp_path / "hand.jsonl"
    hand.write_text("".join(json.dumps(r) + "\n" for r in [
        {"question": "How many founded it?", "answer": "23 households.", "must_contain": ["23"],
         "source": "about.md", "fact_id": "households"},
        {"question": "Who chairs it?", "answer": "Ingrid.", "must_contain": ["Ingrid"],
         "source": "about.md", "fact_id": "chair"}]))
    synth = tmp_path / "synth.jsonl"
    synth.write_text("".join(json.dumps(r) + "\n" for r in [
        {"question": "How many households founded it?", "answer": "It was 23 households.",
         "must_contain": ["23"], "source": "about.md", "fact_id": "about-001"},
        {"question": "What does a water butt earn?", "answer": "A rebate of £23.50.",
         "must_contain": ["23.50"], "source": "about.md", "fact_id": "about-002"},
        {"question": "How many, elsewhere?", "answer": "23 farms.", "must_contain": ["23"],
         "source": "other.md", "fact_id": "other-001"},
        {"question": "Who chairs it?", "answer": "Ingrid chairs it.", "must_contain": ["Ingrid"],
         "source": "about.md", "fact_id": "about-003"}]))
    out = recipes.synthesized_for(hand, {"households"}, synth, tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["question"], r["fact_id"]) for r in rows] == [
        ("How many households founded it?", "households")]


def test_crossed_files_swap_questions_or_answers_for_facts_both_files_state(tmp_path):
    def write(name, rows):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    hand = write("hand.jsonl", [
        {"question": "hq1", "answer": "ha1", "must_contain": ["m"], "fact_id": "f"},
        {"question": "hq2", "answer": "ha2", "must_contain": ["m"], "fact_id": "f"},
        {"question": "only hand", "answer": "x", "must_contain": ["y"], "fact_id": "g"}])
    synth = write("synth.jsonl", [
        {"question": "sq1", "answer": "sa1", "must_contain": ["m2"], "fact_id": "f"}])

    def pairs(keep):
        out = recipes.crossed(hand, synth, keep, tmp_path / f"{keep}.jsonl")
        return [(r["question"], r["answer"], r["must_contain"])
                for r in map(json.loads, out.read_text().splitlines())]

    assert pairs("questions") == [("hq1", "sa1", ["m"]), ("hq2", "sa1", ["m"])]
    assert pairs("answers") == [("sq1", "ha1", ["m"])]


def test_the_wordings_table_names_each_training_file_best_first():
    def entry(name, recall, synthesized):
        return {"name": name, "synthesized": synthesized, "facts": 50, "pairs": 150,
                "epochs_run": 15, "train_seconds": 600.0, "held_out_recall": recall,
                "held_out_questions": 50, "command": f"python -m bench.training_recipes {name}"}

    runs = {"a": entry("synth", 0.18, "s/train.jsonl"), "b": entry("hand", 0.4, None)}
    table = recipes.wordings_markdown(runs)
    assert table.index("`hand`") < table.index("`synth`")
    assert "`s/train.jsonl`" in table and "hand-written" in table and "**0.18** (50 q)" in table
    assert "Same facts" not in table  # no crossed runs yet
    runs["c"] = {**entry("q", 0.2, "s/train.jsonl"), "keep_from_hand": "answers"}
    runs["d"] = {**entry("a", 0.35, "s/train.jsonl"), "keep_from_hand": "questions"}
    assert ("hand-written pairs 0.40; hand-written answers with its questions 0.20; "
            "hand-written questions with its answers 0.35; its own pairs 0.18") \
        in recipes.wordings_markdown(runs)


def test_recipe_table_puts_the_best_held_out_recall_first():
    def entry(name, recall):
        return {"name": name, "hyperparameters": {"targets": "all-linear", "rank": 16,
                                                   "alpha": 32, "lr": 0.002, "epochs": 12},
                "epochs_run": 12, "facts": 50, "pairs": 150, "train_seconds": 120.0,
                "adapter_mb": 9.4, "held_out_recall": recall, "held_out_questions": 50,
                "date": "2026-11-22", "command": f"python -m bench.training_recipes {name}"}

    table = recipes.markdown({"weak": entry("weak", 0.1), "strong": entry("strong", 0.4)})
    assert table.index("`strong`") < table.index("`weak`")
    assert "**0.40** (50 q)" in table and "2.0 min" in table
    assert "python -m bench.training_recipes weak" in table


def test_recipes_run_on_both_domains_are_compared_side_by_side_best_mean_first():
    def entry(name, domain, recall, overrides):
        return {"name": name, "domain": domain, "overrides": overrides,
                "hyperparameters": {"targets": "all-linear", "rank": 16, "alpha": 32,
                                    "lr": 0.002, "epochs": 15},
                "epochs_run": 15, "facts": 60, "pairs": 180, "train_seconds": 300.0,
                "adapter_mb": 9.4, "held_out_recall": recall, "held_out_questions": 60,
                "date": "2026-11-29", "command": f"python -m bench.training_recipes {name}"}

    results = {"a@w": entry("a", "w", 0.6, {}), "a@n": entry("a", "n", 0.2, {}),
               "b@w": entry("b", "w", 0.5, {"epochs": 15}),
               "b@n": entry("b", "n", 0.5, {"epochs": 15}),
               "only-w": entry("only-w", "w", 0.9, {})}
    table = recipes.across_domains(results)
    assert table.index("`b`") < table.index("`a`") and "`only-w`" not in table
    assert "| epochs=15 |" in table and "**0.50** |" in table and "**0.40** |" in table
    assert "both demo domains" not in recipes.markdown({"only-w": results["only-w"]})
    assert "both demo domains" in recipes.markdown(results)


def test_peak_rss_of_a_child_is_its_own_not_its_parents(tmp_path):
    """ru_maxrss survives fork and exec: a child of a big parent reported the parent's peak."""
    import subprocess
    import sys

    ballast = bytearray(400 * 2**20)  # make this (parent) process big before forking
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch the pages so they are resident
    parent = peak_rss_mb()
    child = float(subprocess.run(
        [sys.executable, "-c", "from bench.bench_models import peak_rss_mb; print(peak_rss_mb())"],
        capture_output=True, text=True, check=True, cwd=recipes.ROOT).stdout)
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


def test_dev_questions_take_one_phrasing_per_fact_in_rotation(tmp_path):
    from bench import dev_questions

    rows = [{"question": f"q{i}{p}", "fact_id": f"f{i}"} for i in range(4) for p in "abc"]
    assert [r["question"] for r in dev_questions.one_per_fact(rows)] == ["q0a", "q1b", "q2c", "q3a"]
    out = tmp_path / "dev.jsonl"
    assert dev_questions.main([str(out)]) == 0  # the real training file: one row per fact
    dev = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({r["fact_id"] for r in dev}) == len(dev) >= 60


def test_synth_verdict_compares_orders_gaps_baseline_and_recipes(tmp_path):
    from bench import synth_verdict

    def summary(folder, recalls, name):
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps({
            "questions_file": name, "adapter": "a", "n_questions": 10,
            "per_mode": {m: {"recall": r} for m, r in recalls.items()}}))
        return folder

    questions = tmp_path / "test.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in [
        {"question": "Which lab tests the water?", "must_contain": ["Fenlab"], "fact_id": "lab",
         "source": "quality.md"},
        {"question": "How much is the fee?", "must_contain": ["148.50"], "fact_id": "fee",
         "source": "fees.md"},
        {"question": "Capital of Peru?", "must_contain": [], "out_of_scope": True}]))
    hand = summary(tmp_path / "hand", {"prompt": 0.7, "adapter": 0.5, "layered": 0.8},
                   str(questions))
    synth = summary(tmp_path / "synth", {"prompt": 0.65, "adapter": 0.3, "layered": 0.75}, "s")
    base = summary(tmp_path / "base", {"adapter": 0.625}, "h")
    cards = []
    for name, rank in (("hand", 8), ("synth", 16)):
        cards.append(tmp_path / f"{name}.json")
        cards[-1].write_text(json.dumps({"hyperparameters": {"rank": rank, "epochs": 12},
                                         "seconds": 600.0 * rank / 8}))
    trains = [tmp_path / "hand.jsonl", tmp_path / "synth.jsonl"]
    trains[0].write_text(json.dumps({"question": "How much is the fee?", "fact_id": "fee",
                                     "answer": "It is 148.50 pounds."}) + "\n")
    trains[1].write_text("".join(json.dumps(r) + "\n" for r in [
        {"question": "The connection fee is what?", "answer": "The connection fee is 148.50.",
         "must_contain": ["148.50"], "source": "fees.md", "fact_id": "s-fee"},
        # Fenlab named in another document: not the held-out question's fact
        {"question": "Who audits Fenlab?", "answer": "Fenlab is audited by Corvey.",
         "must_contain": ["Corvey"], "source": "audits.md", "fact_id": "s-audit"}]))
    (hand / "results.csv").write_text(
        "mode,out_of_scope,error,question,answer,recall\n"
        "adapter,False,,Which lab tests the water?,Which lab tests the water.,0.0\n"
        "adapter,False,,How much is the fee?,148.50 pounds.,1.0\n"
        "prompt,False,,Which lab tests the water?,Which lab tests the water.,0.0\n")
    out = tmp_path / "out"
    synth_verdict.main([str(hand), str(synth), "--baseline", str(base / "summary.json"),
                        "--cards", *map(str, cards), "--train", *map(str, trains),
                        "--out", str(out)])
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["same_order"] and not verdict["within_tolerance"]  # adapter: -0.20
    assert verdict["baseline"]["share"] == 0.8 and verdict["baseline"]["met"]
    assert not verdict["recipes"]["same"] and "not the same recipe" in verdict["text"]
    assert verdict["recipes"]["train_minutes"] == {"handwritten": 10.0, "synthesized": 20.0}
    copying = verdict["copying"]
    assert copying["synthesized_train"]["share"] == 0.5
    assert copying["handwritten_train"]["share"] == 0.0
    assert copying["synthesized_adapter"] == {"restated": 1, "of": 2, "share": 0.5}
    assert "handwritten_adapter" not in copying  # no results.csv beside the baseline
    # only the fee's fact is in the synthesized file; asked in the same words by both files
    assert verdict["wording"] == {
        "questions": 2, "covered": 1, "adapter_recall_covered": 1.0,
        "overlap_synthesized": 0.5, "overlap_handwritten": 1.0,
        "phrasings_synthesized": 1.0, "phrasings_handwritten": 1.0}
    assert "holds the facts of 1 of the 2 hand-written questions" in verdict["text"]


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


def test_the_synth_verdict_block_tables_the_newest_verdict_and_sums_up_the_others(
        monkeypatch, tmp_path):
    from bench import readme

    def verdict(name, adapter_recall):
        path = tmp_path / name / "verdict.json"
        path.parent.mkdir()
        path.write_text(json.dumps({
            "text": f"| mode | x |\n|---|---|\n| adapter | {adapter_recall} |\n\nprose",
            "same_order": True, "within_tolerance": False, "tolerance": 0.1,
            "runs": {"adapter": name}, "handwritten_recall": {"adapter": adapter_recall},
            "synthesized_recall": {"adapter": 0.7}}))
        return path

    monkeypatch.setattr(readme, "ROOT", tmp_path)
    monkeypatch.setattr(readme, "SYNTH", tmp_path)
    monkeypatch.setattr(readme, "SYNTH_ABLATION", tmp_path / "none.json")
    monkeypatch.setattr(readme, "SYNTH_VERDICTS", [
        (tmp_path / "newest" / "verdict.json", "new rules"),
        (verdict("older", 0.1), "old rules")])
    block = readme._synth_verdict(tmp_path)  # the newest is not there yet: the older one
    assert block.startswith("| mode | x |\n|---|---|\n| adapter | 0.1 |\n\nTraining pairs: old")
    verdict("newest", 0.3)
    block = readme._synth_verdict(tmp_path)
    assert block.startswith("| mode | x |\n|---|---|\n| adapter | 0.3 |\n\nTraining pairs: new")
    assert "Trained on old rules (`older`, `older/verdict.json`): adapter recall 0.10" in block
    assert block.rstrip().endswith("every command: [.](README.md)).")


def test_nearest_overlap_is_how_close_a_test_set_asks_to_its_training_words(tmp_path):
    from bench.synth_verdict import nearest_overlap, wording_text

    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in [
        {"question": "How much is the late payment fee?", "fact_id": "fee"},
        {"question": "What does a late bill cost?", "fact_id": "fee"},
        {"question": "Who chairs the board?", "fact_id": "chair"}]))
    test.write_text("".join(json.dumps(r) + "\n" for r in [
        {"question": "Quick question: how much is the late payment fee?", "fact_id": "fee"},
        {"question": "Who leads the board meetings?", "fact_id": "chair"},
        {"question": "Capital of Peru?", "out_of_scope": True}]))
    # fee: the same content words (1.0); chair: {board} of {board, leads, meetings, chairs}
    assert nearest_overlap(test, train) == round((1.0 + 0.25) / 2, 2)
    text = wording_text({"covered": 1, "questions": 2, "adapter_recall_covered": 0.5,
                         "overlap_synthesized": 0.1, "overlap_handwritten": 0.2,
                         "phrasings_synthesized": 2.0, "phrasings_handwritten": 3.0,
                         "heldout_overlap_synthesized": 0.84})
    assert "held-out questions share 0.84 of their content words" in text


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
    assert default_engine() == "strata-nf4"
    text = markdown(result)  # an old result, "meets" written from the best engine
    assert "(`strata-nf4`," in text and "0.3x, **missed**" in text
    assert "Fastest engine: `strata-llamacpp`, 1.04x (opt-in" in text
