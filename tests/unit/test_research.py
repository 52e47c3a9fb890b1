"""The research scripts (research/: one-off studies, not benchmarks) and their results:
recipe parsing, fact subsets, crossed files, tables, the verdict from synthesized questions;
every committed result names the command that wrote it, and the product imports none of it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from research import training_recipes as recipes

ROOT = Path(__file__).resolve().parents[2]


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
                "held_out_questions": 50, "command": f"python -m research.training_recipes {name}"}

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
                "date": "2026-11-22", "command": f"python -m research.training_recipes {name}"}

    table = recipes.markdown({"weak": entry("weak", 0.1), "strong": entry("strong", 0.4)})
    assert table.index("`strong`") < table.index("`weak`")
    assert "**0.40** (50 q)" in table and "2.0 min" in table
    assert "python -m research.training_recipes weak" in table


def test_recipes_run_on_both_domains_are_compared_side_by_side_best_mean_first():
    def entry(name, domain, recall, overrides):
        return {"name": name, "domain": domain, "overrides": overrides,
                "hyperparameters": {"targets": "all-linear", "rank": 16, "alpha": 32,
                                    "lr": 0.002, "epochs": 15},
                "epochs_run": 15, "facts": 60, "pairs": 180, "train_seconds": 300.0,
                "adapter_mb": 9.4, "held_out_recall": recall, "held_out_questions": 60,
                "date": "2026-11-29", "command": f"python -m research.training_recipes {name}"}

    results = {"a@w": entry("a", "w", 0.6, {}), "a@n": entry("a", "n", 0.2, {}),
               "b@w": entry("b", "w", 0.5, {"epochs": 15}),
               "b@n": entry("b", "n", 0.5, {"epochs": 15}),
               "only-w": entry("only-w", "w", 0.9, {})}
    table = recipes.across_domains(results)
    assert table.index("`b`") < table.index("`a`") and "`only-w`" not in table
    assert "| epochs=15 |" in table and "**0.50** |" in table and "**0.40** |" in table
    assert "both demo domains" not in recipes.markdown({"only-w": results["only-w"]})
    assert "both demo domains" in recipes.markdown(results)


def test_dev_questions_take_one_phrasing_per_fact_in_rotation(tmp_path):
    from research import dev_questions

    rows = [{"question": f"q{i}{p}", "fact_id": f"f{i}"} for i in range(4) for p in "abc"]
    assert [r["question"] for r in dev_questions.one_per_fact(rows)] == ["q0a", "q1b", "q2c", "q3a"]
    out = tmp_path / "dev.jsonl"
    assert dev_questions.main([str(out)]) == 0  # the real training file: one row per fact
    dev = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({r["fact_id"] for r in dev}) == len(dev) >= 60


def test_synth_verdict_compares_orders_gaps_baseline_and_recipes(tmp_path):
    from research import synth_verdict

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


def test_nearest_overlap_is_how_close_a_test_set_asks_to_its_training_words(tmp_path):
    from research.synth_verdict import nearest_overlap, wording_text

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


def _commands(result):
    """The commands a research result holds: its own, or one per entry (a table of runs)."""
    if "command" in result:
        return [result["command"]]
    return [entry.get("command") for entry in result.values() if isinstance(entry, dict)]


def test_every_research_result_holds_the_command_that_wrote_it():
    files = sorted((ROOT / "research" / "results").rglob("*.json"))
    assert files
    for path in files:
        commands = _commands(json.loads(path.read_text()))
        assert commands and all(commands), f"{path.relative_to(ROOT)}: no command inside"
        assert all(c.startswith(("python -m research.", "assistant ")) for c in commands), \
            f"{path.relative_to(ROOT)}: {commands[0]}"


def test_the_verdict_and_the_model_questions_write_their_command_into_the_result():
    from research.synth_verdict import command

    assert command(["a b", "c", "--out", "d"]) == \
        "python -m research.synth_verdict 'a b' c --out d"


def test_research_is_a_package_whose_scripts_say_what_they_ask():
    readme = (ROOT / "research" / "README.md").read_text()
    for script in sorted((ROOT / "research").glob("*.py")):
        if script.name == "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(script.read_text()))
        assert doc and f"python -m research.{script.stem}" in doc, script.name
        assert f"`research.{script.stem}`" in readme or f"research/{script.name}" in readme, \
            f"research/README.md does not name {script.name}"


def test_the_product_imports_neither_benchmarks_nor_research():
    wrong = []
    for path in (ROOT / "assistant").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            wrong += [f"{path.relative_to(ROOT)} imports {n}" for n in names
                      if n.split(".")[0] in ("bench", "research")]
    assert not wrong, "\n".join(wrong)


def test_writer_verdict_checks_the_three_targets_from_eval_summaries(tmp_path):
    from research import writer_verdict

    def summary(name, used, **recalls):
        per_mode = {m: {"recall": r[0], "generated_recall": r[1], "quoted_rate": r[2]}
                    for m, r in recalls.items()}
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"per_mode": per_mode, "adapter": used}))
        return str(path)

    hand = summary("hand", "hw", prompt=(0.72, 0.25, 0.86), adapter=(0.63, 0.63, 0.0),
                   layered=(0.75, 0.67, 0.2))
    on_hand = summary("on_hand", "syn", prompt=(0.72, 0.25, 0.86), adapter=(0.45, 0.45, 0.0),
                      layered=(0.70, 0.6, 0.2))
    on_docs = summary("on_docs", "syn", prompt=(0.85, 0.3, 0.8), adapter=(0.70, 0.7, 0.0),
                      layered=(0.88, 0.7, 0.2))
    read = summary("read", "reader", prompt=(0.72, 0.25, 0.86), layered=(0.74, 0.6, 0.3))
    out = tmp_path / "out"
    assert writer_verdict.main(["--domain", "water", "--handwritten", hand,
                                "--synth-on-handwritten", on_hand,
                                "--synth-on-synthesized", on_docs, "--reading", read,
                                "--out", str(out)]) == 0
    v = json.loads((out / "verdict.json").read_text())
    assert v["closed_book"]["share"] == round(0.45 / 0.63, 3) and v["closed_book"]["met"]
    assert v["agreement"]["same_best"] and v["agreement"]["best_documents"] == "layered"
    assert v["agreement"]["gap"]["adapter"] == 0.07 and not v["agreement"]["met"]  # prompt +0.13
    assert v["reading"]["met"] and v["reading"]["layered"]["own_words_share"] == 0.7
    assert v["command"].startswith("python -m research.writer_verdict --domain water")
    assert "| adapter | 0.63 | 0.70 | 0.45 | - |" in v["text"]
    assert "| layered | 0.75 | 0.88 | 0.70 | 0.74 |" in v["text"]


def test_writer_verdict_keeps_an_earlier_verdicts_closed_book_figures(tmp_path):
    from research import writer_verdict

    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({
        "domain": "water", "command": "python -m research.writer_verdict --old",
        "closed_book": {"synthesized_pairs_adapter": 0.16, "handwritten_pairs_adapter": 0.63,
                        "share": 0.254, "target_share": 0.7, "met": False},
        "adapter_on_handwritten": {"adapter": 0.16}, "handwritten": {"adapter": 0.5}}))
    hand = tmp_path / "hand.json"
    hand.write_text(json.dumps({"adapter": "hw", "engine": "llamacpp", "per_mode": {
        "prompt": {"recall": 0.7}, "adapter": {"recall": 0.6}, "layered": {"recall": 0.75}}}))
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"name": "reader", "seconds": 1500, "epochs_run": 3,
                                "stopped_early": False, "data": {"examples": 340}}))
    out = tmp_path / "out"
    assert writer_verdict.main(["--domain", "water", "--handwritten", str(hand), "--earlier",
                                str(earlier), "--synth-on-synthesized", str(hand),
                                "--reading-card", str(card), "--out", str(out)]) == 0
    v = json.loads((out / "verdict.json").read_text())
    assert v["closed_book"]["share"] == 0.254 and v["adapter_on_handwritten"] == {"adapter": 0.16}
    assert v["handwritten"] == {"prompt": 0.7, "adapter": 0.6, "layered": 0.75}  # the new one
    assert v["earlier_command"] == "python -m research.writer_verdict --old"
    assert v["agreement"]["met"] and v["reading_card"]["minutes"] == 25.0
    assert "25.0 min, 3 epochs on 340 pairs" in v["text"] and "--old" in v["text"]
    assert "hand-written verdict: llamacpp" in v["text"]

    read = tmp_path / "read.json"  # no prompt mode: it is the hand-written run's
    read.write_text(json.dumps({"adapter": "reader", "engine": "llamacpp", "per_mode": {
        "layered": {"recall": 0.74, "generated_recall": 0.6, "quoted_rate": 0.3}}}))
    assert writer_verdict.main(["--domain", "water", "--handwritten", str(hand), "--earlier",
                                str(earlier), "--reading", str(read), "--out", str(out)]) == 0
    v = json.loads((out / "verdict.json").read_text())
    assert v["reading"]["prompt"]["recall"] == 0.7 and v["reading"]["prompt_from"] == "handwritten"

    # a synth report without --synth-on-handwritten: its figures, and no wording (which
    # reads the synthesized-pairs adapter's evaluation) rather than a TypeError
    report = tmp_path / "synth" / "report.json"
    report.parent.mkdir()
    report.write_text(json.dumps({"facts_kept": 40, "train_pairs": 300,
                                  "held_out_overlap": {"mean": 0.31}}))
    assert writer_verdict.main(["--domain", "water", "--handwritten", str(hand), "--earlier",
                                str(earlier), "--synth-report", str(report),
                                "--out", str(out)]) == 0
    v = json.loads((out / "verdict.json").read_text())
    assert v["synth"]["held_out_overlap"] == 0.31 and "wording" not in v


def test_writer_verdict_takes_the_hand_written_baseline_from_a_recipe_entry(tmp_path):
    from research import writer_verdict

    recipes = tmp_path / "recipes.json"
    recipes.write_text(json.dumps({"defaults@nimbus": {
        "held_out_recall": 0.36, "command": "python -m research.training_recipes defaults"}}))
    on_hand = tmp_path / "on_hand.json"
    on_hand.write_text(json.dumps({"adapter": "syn", "per_mode": {
        "adapter": {"recall": 0.27}, "prompt": {"recall": 0.8}}}))
    out = tmp_path / "out"
    assert writer_verdict.main(["--domain", "nimbus", "--handwritten-recipe", "defaults@nimbus",
                                "--recipes", str(recipes), "--synth-on-handwritten",
                                str(on_hand), "--synth-on-synthesized", str(on_hand),
                                "--out", str(out)]) == 0
    v = json.loads((out / "verdict.json").read_text())
    assert v["closed_book"]["handwritten_pairs_adapter"] == 0.36 and v["closed_book"]["met"]
    assert "training_recipes defaults" in v["closed_book"]["handwritten_from"]
    assert "agreement" not in v  # one mode is no verdict to agree with


def test_an_evaluation_is_rebuilt_from_its_ledger_rows_in_asking_order():
    from types import SimpleNamespace

    import pytest

    from research.eval_from_ledger import rows_from_ledger

    q = [SimpleNamespace(question="Fee?", answer="It is 148.50.", must_contain=("148.50",),
                         out_of_scope=False, fact_id="fee", line=1),
         SimpleNamespace(question="Capital of Peru?", answer="", must_contain=(),
                         out_of_scope=True, fact_id=None, line=2)]

    def record(question, mode, answer, generated=None):
        return {"question": question, "requested_mode": mode, "answer": answer,
                "generated": generated, "error": None, "chosen_mode": mode, "adapter": None,
                "grounding": None, "prompt_tokens": 9, "completion_tokens": 3, "ttft_ms": 1.0,
                "total_ms": 2.0, "tokens_per_s": 3.0, "cost_usd": 0.0, "token_cost_usd": 0.0,
                "compute_cost_usd": 0.0, "id": "x"}

    records = [record("Fee?", "adapter", "148.50"),
               record("Fee?", "prompt", "Quoted: 148.50", generated="It is 12."),
               record("Capital of Peru?", "adapter", "I don't know."),
               record("Capital of Peru?", "prompt", "Lima")]
    rows = rows_from_ledger(records, q, ["adapter", "prompt"])
    assert [r["recall"] for r in rows] == [1.0, 1.0, None, None]
    assert rows[1]["generated_recall"] == 0.0 and rows[2]["declined"]
    with pytest.raises(SystemExit, match="the run asked"):
        rows_from_ledger(records[1:] + records[:1], q, ["adapter", "prompt"])
    with pytest.raises(SystemExit, match="make 4"):
        rows_from_ledger(records[:3], q, ["adapter", "prompt"])



def test_answer_profile_splits_an_answer_into_its_steps_and_shares():
    from research import answer_profile as profile

    spans = {"strata.retrieval": 30.0, "strata.routing": 2.0, "strata.rerank": 600.0,
             "chat smollm2-135m": 300.0, "strata.grounding": 1.0, "strata.answer": 999.0}
    steps = profile.steps_of(spans, messages_ms=610.0, ledger_ms=5.0, total_ms=1000.0)
    assert steps == {"routing": 2.0, "retrieval": 30.0, "rerank": 600.0,
                     "prompt building": 10.0, "generation": 300.0, "answer check": 1.0,
                     "ledger write": 5.0, "other": 52.0}
    summary = profile.summarize([{**steps, "total": 1000.0}, {**steps, "total": 1000.0}])
    assert summary["dominant"] == "rerank" and summary["answers"] == 2
    assert summary["share_of_answer"]["rerank"] == 0.6


def test_layered_agreement_scores_recall_and_own_words_per_agreement():
    from research.layered_agreement import AGREEMENTS, score

    def answer(own, recall):
        return {f"agree_{k}": {"own_words": own[k], "recall": recall[k]} for k in AGREEMENTS}

    records = [
        {"must_contain": ["Vasquez-Holm"], **answer([1, 0, 1, 1], [0.0, 1.0, 0.0, 0.0])},
        {"must_contain": ["£148.50"], **answer([1, 1, 1, 1], [1.0, 1.0, 1.0, 1.0])},
        {"must_contain": [], **answer([1, 1, 1, 1], [0.0, 0.0, 0.0, 0.0])},  # out of scope
    ]
    scored = score(records)
    assert scored["agree_0"] == {"recall": 0.5, "own_words_share": 1.0,
                                 "own_words_recall": 0.5, "questions": 2}
    assert scored["agree_1"] == {"recall": 1.0, "own_words_share": 0.5,
                                 "own_words_recall": 1.0, "questions": 2}


def test_quote_margin_replaces_only_kept_answers_whose_ranking_is_unsure():
    from research.quote_margin import markdown, score

    def answer(kept, lead, recall, quote_recall, declined=False, must=("1987",)):
        return {"must_contain": list(must), "kept": kept, "declined": declined, "lead": lead,
                "recall": recall, "quote_recall": quote_recall}

    records = [
        answer(True, 0.01, 0.0, 1.0),  # a close call kept: the quote holds the fact
        answer(True, 0.3, 1.0, 1.0),  # a clear lead: kept at every margin
        answer(False, 0.01, 1.0, 1.0),  # already quoted: keeps its recorded score
        answer(True, 0.01, 0.0, 1.0, declined=True),  # a decline is left alone
        answer(True, 0.01, 0.0, 0.0, must=()),  # out of scope: not scored
    ]
    scored = score(records)
    assert scored["0"] == {"recall": 0.5, "own_words_share": 0.75, "replaced": 0,
                           "questions": 4}
    assert scored["0.05"] == {"recall": 0.75, "own_words_share": 0.5, "replaced": 1,
                              "questions": 4}
    assert scored["0.2"] == scored["0.05"]
    quoted = [{**records[2], "quote_reproduced": True}]
    table = markdown([{"label": "demo", "command": "python -m research.quote_margin",
                       "runs": [{"label": "layered", "margins": scored, "answers": quoted}]}])
    assert "| demo: layered | 4 | 0.50 (75%) | **0.75** (50%) |" in table
    assert "(recorded quotes quoted again: layered 1/1)" in table
    assert "Chosen margin" not in table  # no dev set among the files


def test_quote_margin_is_chosen_on_the_dev_sets_band_by_band():
    from research.quote_margin import bands, chosen

    def answer(lead, recall, quote_recall):
        return {"must_contain": ["x"], "kept": True, "declined": False, "lead": lead,
                "recall": recall, "quote_recall": quote_recall}

    dev = [answer(0.01, 0.0, 1.0), answer(0.02, 1.0, 1.0),  # 0-0.025: 1 gained of 2
           answer(0.03, 1.0, 1.0), answer(0.04, 1.0, 1.0), answer(0.045, 1.0, 1.0),
           answer(0.06, 0.0, 1.0)]  # 0.025-0.05 gains nothing: the choice stops before it
    held_out = [answer(0.03, 0.0, 1.0)] * 5  # never chosen on
    files = [{"label": "a (dev)", "runs": [{"answers": dev}]},
             {"label": "a, held-out", "runs": [{"answers": held_out}]}]
    rows = bands(files)
    assert [r["replaced"] for r in rows[:3]] == [2, 3, 1]
    assert rows[0]["rate"] == 0.5 and rows[1]["rate"] == 0.0 and rows[2]["rate"] == 1.0
    assert chosen(rows) == 0.025


def test_writer_verdict_takes_one_adapters_runs_of_different_modes_together(tmp_path):
    from research import writer_verdict

    def summary(name, engine="llamacpp", **recalls):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"adapter": "reader", "engine": engine,
                                    "questions_file": "synth/test.jsonl",
                                    "per_mode": {m: {"recall": r} for m, r in recalls.items()}}))
        return path

    merged = writer_verdict._merged([summary("dev", layered=0.6),
                                     summary("rest", prompt=0.7, adapter=0.1)])
    assert merged["per_mode"] == {"layered": {"recall": 0.6}, "prompt": {"recall": 0.7},
                                  "adapter": {"recall": 0.1}}
    with pytest.raises(SystemExit, match="both answered in layered mode"):
        writer_verdict._merged([summary("a", layered=0.6), summary("b", layered=0.5)])
    with pytest.raises(SystemExit, match="differ in engine"):
        writer_verdict._merged([summary("c", layered=0.6), summary("d", "local", prompt=0.5)])


def test_layered_agreement_table_bolds_the_best_recall_and_names_each_command():
    from research.layered_agreement import markdown

    figures = {f"agree_{k}": {"recall": r, "own_words_share": s, "questions": 120}
               for k, (r, s) in enumerate([(0.5, 0.74), (0.63, 0.46), (0.59, 0.59),
                                           (0.54, 0.65)])}
    def answer(recorded, *own, replayed=True):
        return {"recorded": recorded, **({"reproduced": True} if replayed else {}),
                **{f"agree_{k}": {"own_words": o} for k, o in enumerate(own)}}

    answers = [answer("grounded", True, True, True, True),
               answer("declined", True, True, True, True),
               answer("quoted: x", True, False, True, True),  # the run had agreement with 1
               answer("quoted: y", False, False, False, False, replayed=False)]
    text = markdown([{"label": "reader, hand-written", "agreements": figures,
                      "command": "python -m research.layered_agreement --x",
                      "answers": answers}])
    assert "| reader, hand-written | 120 | 0.50 (74%) | **0.63** (46%) | 0.59 (59%) |" in text
    assert "`python -m research.layered_agreement --x` (the run's own check, found again: " \
        "best 1, 3/3 answers as recorded)" in text


def test_the_concurrency_split_asks_each_mix_the_same_requests_models_interleaved():
    from research.concurrency_split import compositions, work

    mixes = compositions("demo", "demo-half")
    assert mixes["three models (the benchmark's mix)"] == ["demo", "demo-half", "strata-base"]
    assert work(["q1", "q2"], ["a", "b"], 6) == [("a", "q1"), ("b", "q1"), ("a", "q2"),
                                                 ("b", "q2"), ("a", "q1"), ("b", "q1")]


def test_reading_contexts_sets_each_spread_run_beside_its_baseline_and_prompt_mode(tmp_path):
    from research import reading_contexts

    def figures(recall, quoted, own):
        return {"recall": recall, "quoted_rate": quoted, "generated_recall": own}

    verdict = {"command": "python -m research.writer_verdict ...", "domain": "harrowgate-water",
               "reading": {"adapter": "reading-water", "engine": "llamacpp",
                           "layered": {"recall": 0.667, "own_words_recall": 0.392,
                                       "own_words_share": 0.54},
                           "prompt": {"recall": 0.742, "own_words_recall": 0.383,
                                      "own_words_share": 0.183}},
               "reading_card": {"minutes": 14.3}}
    summary = {"engine": "llamacpp", "adapter": "reading-spread",
               "questions_file": "knowledge/harrowgate-water/qa/test.jsonl",
               "per_mode": {"layered": figures(0.75, 0.3, 0.5)}}
    control = {**summary, "adapter": "reading-plain",
               "per_mode": {"layered": figures(0.5, 0.4, 0.25)}}
    pairs = {"domain": "harrowgate-water", "command": "python -m research.reading_contexts pairs",
             "synth": {"passages": {"1": 3, "2": 1}, "fact_passage_place": {"1": 4}},
             "dev": {"passages": {"2": 1, "3": 1}, "fact_passage_place": {"1": 1, "2": 1}},
             "spread_share": 0.8,
             "spread": {"spread": 2, "with_fact": 3, "distractors_only": 1,
                        "fact_not_retrieved": 0, "no_other_passage": 1, "no_room": 0,
                        "drop_fact": 0},
             "plain": {"spread": 0, "with_fact": 3, "distractors_only": 1,
                       "fact_not_retrieved": 0, "no_other_passage": 0, "no_room": 0,
                       "drop_fact": 0}}
    files = {"verdict.json": verdict, "pairs.json": pairs,
             "spread/summary.json": summary, "plain/summary.json": control,
             "spread/card.json": {"name": "reading-spread", "seconds": 600,
                                  "data": {"examples": 4}},
             "plain/card.json": {"name": "reading-plain", "seconds": 540}}
    head = "mode,question,must_contain,recall,generated_recall\n"
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(json.dumps(body))
    (tmp_path / "plain/results.csv").write_text(head + "layered,q1,x,0,0\nlayered,q2,y,1,0\n")
    (tmp_path / "spread/results.csv").write_text(head + "layered,q1,x,1,1\nlayered,q2,y,1,1\n")
    out = tmp_path / "water.json"
    reading_contexts.main(["compare", "--domain", "harrowgate-water", "--baseline",
                           str(tmp_path / "verdict.json"), "--pairs", str(tmp_path / "pairs.json"),
                           "--run", "control", str(tmp_path / "plain/summary.json"),
                           str(tmp_path / "plain/card.json"),
                           "--run", "spread contexts", str(tmp_path / "spread/summary.json"),
                           str(tmp_path / "spread/card.json"), "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["runs"][1]["layered"] == {"recall": 0.75, "own_words_recall": 0.5,
                                            "own_words_share": 0.7}
    text = reading_contexts.markdown([result])
    assert "contexts, another synth run (the writer verdict's, reading-water) | 0.67 (54%) | " \
        "0.39 | 14.3 |" in text
    assert "| harrowgate-water, layered, spread contexts | 0.75 (70%) | 0.50 | 10.0 |" in text
    assert "| harrowgate-water, prompt mode (no adapter; the writer verdict's hand-written " \
        "run) | 0.74 (18%) | 0.38 | n/a |" in text
    assert ("validation ones): 4 questions, passages shown 1: 75%, 2: 25%, "
            "the fact's passage at place 1: 100% (place 0: the fact not shown)") in text
    assert "4 pairs (3 with the fact, 1 with distractors only), drawn for a spread context " \
        "at share 0.8: 2 spread, 1 with no other passage in reach" in text
    assert ("spread contexts against control, of 2: more recall on 1, less on 0; the model's "
            "own text before the check: more on 2, less on 0.") in text
    for key, wrong in (("engine", "local"), ("questions_file", "dev.jsonl"),
                       ("adapter", "reading-water")):  # unlike the baseline, or its card
        (tmp_path / "spread/summary.json").write_text(json.dumps({**summary, key: wrong}))
        with pytest.raises(SystemExit):
            reading_contexts.main(["compare", "--domain", "harrowgate-water", "--baseline",
                                   str(tmp_path / "verdict.json"), "--pairs",
                                   str(tmp_path / "pairs.json"), "--run", "x",
                                   str(tmp_path / "spread/summary.json"),
                                   str(tmp_path / "spread/card.json")])


def test_reading_contexts_counts_passages_shown_and_the_facts_place():
    from assistant.answering.prompts import ContextLine, format_context
    from assistant.training.data import Example
    from assistant.training.reading import Shown
    from research.reading_contexts import shape

    lines = [ContextLine(1, "Staff", "It employs 63 people.", 0.5),
             ContextLine(3, "History", "The co-op was founded in 1987.", 0.9)]
    examples = [Example("When was it founded?", "In 1987.", 0, "f", ("1987",)),
                Example("Who chairs it?", "Ada.", 1, "g", ("Ada",))]
    got = shape(examples, lambda question: Shown(lines, format_context))
    assert got == {"passages": {"2": 2}, "fact_passage_place": {"2": 1, "0": 1},
                   "sentences": {"2": 2}, "fact_sentence_place": {"2": 1, "0": 1}}


def test_reading_contexts_pairs_two_runs_question_by_question(tmp_path):
    from research.reading_contexts import paired

    head = "mode,question,must_contain,recall\n"
    for run, body in (("a", "layered,q1,x,1.0\nlayered,q2,y,0.0\nlayered,q3,z,0.0\n"
                             "layered,q4,,0.0\nprompt,q2,y,1.0\n"),
                      ("b", "layered,q1,x,0.0\nlayered,q2,y,1.0\nlayered,q3,z,1.0\n"
                             "layered,q4,,1.0\n")):
        (tmp_path / run).mkdir()
        (tmp_path / run / "results.csv").write_text(head + body)
    got = paired(tmp_path / "a" / "summary.json", tmp_path / "b" / "summary.json")
    assert got == {"questions": 3, "better": 2, "worse": 1,  # q4 is out of scope
                   "own_better": 0, "own_worse": 0}
