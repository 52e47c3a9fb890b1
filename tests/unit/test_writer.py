"""The learned question writer: its training pairs from hand-written questions, the checks
on what it writes, and synth's learned mode (a scripted writer stands in for the adapter)."""

from __future__ import annotations

import json

from assistant.training.data import load_examples, split_validation
from assistant.training.facts import Sentence
from assistant.training.synth import Options, synthesize, train_rows
from assistant.training.writer import (
    SYSTEM_PROMPT,
    first_question,
    locate,
    messages_for,
    training_rows,
    verdict,
)
from tests.unit.test_synth import PASSAGES, keyword_search

FOUNDED = "The Cooperative was founded on 14 March 1987."


def test_a_pair_is_located_at_the_sentence_holding_its_strings_closest_to_its_answer():
    sentences = [Sentence("The Cooperative employs 63 people.", "History"),
                 Sentence("In 1987 the first pipes were laid.", "History"),
                 Sentence(FOUNDED, "History")]
    found = locate(sentences, ["1987"], "It was founded in 1987.")
    assert found is not None and found.text == FOUNDED and found.heading == "History"
    assert locate(sentences, ["2001"], "In 2001.") is None
    row = Sentence("x", "Tariffs", label="T-DOM-01", fields={"amount gbp": "7.85", "unit": "m"})
    cell = locate([row], ["7.85"], "It costs £7.85.")
    assert cell is not None and cell.text == "The amount for T-DOM-01 is 7.85."


def test_writer_pairs_come_from_each_domains_hand_written_questions(tmp_path):
    domain = tmp_path / "water"
    (domain / "docs").mkdir(parents=True)
    (domain / "qa").mkdir()
    (domain / "docs" / "history.md").write_text(f"# History\n\n{FOUNDED}\n")
    pairs = [{"question": "When was the co-op set up?", "answer": "In 1987.",
              "must_contain": ["1987"], "source": "history.md", "fact_id": "founded"},
             {"question": "Who is the mayor?", "answer": "Unknown.", "must_contain": ["Zed"],
              "source": "history.md"},
             {"question": "Capital of Peru?", "answer": "x", "out_of_scope": True}]
    (domain / "qa" / "train.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    rows, counts = training_rows([domain], 800, 80)
    assert counts == {"water": {"pairs": 1, "not_located": 1}}
    assert rows[0]["answer"] == "When was the co-op set up?"
    assert rows[0]["question"] == f"Section: History Sentence: {FOUNDED}"
    assert messages_for("History", FOUNDED) == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": rows[0]["question"]}]


def test_a_written_question_is_checked_before_it_is_kept():
    def check(text, kind="date", known=()):
        return verdict(text, FOUNDED, kind, ["1987"], list(known))

    assert check("When did the co-op start?") == "kept"
    assert check("The co-op started then.") == "not a question"
    assert check("Was it 1987 that the co-op began?") == "gives the fact away"
    assert check("Who started the co-op?").startswith("asks for a person")
    assert check("When was the Cooperative founded on March?") == "copies the sentence"
    assert check("When did the co-op start?", known=["when did the co-op start"]) \
        == "copies a question the fact has"
    assert first_question("Question: When did it open?\nAnother one?") == "When did it open?"


def scripted_writer(replies):
    """A writer that answers every request from a list of replies, in turn."""
    calls = []

    def write(requests):
        calls.extend(requests)
        return [replies[i % len(replies)] for i in range(len(requests))]

    return write, calls


def test_learned_mode_trains_on_written_questions_and_holds_out_rule_questions(tmp_path):
    write, calls = scripted_writer([
        "When did the co-op come into being?", "Who runs the co-op?",
        "How much does the late payment cost?", "How many people work for the co-op?"])
    options = Options(writer="learned", samples=4, eval_share=0.5, val_share=0.5, seed=1)
    result = synthesize(PASSAGES, keyword_search(), options, write=write)
    assert calls and len(calls) % 4 == 0  # four samples per fact
    assert all(c[0]["content"] == SYSTEM_PROMPT for c in calls)
    written = [f for f in result.facts if f.model_made]
    assert written, "some written questions pass the checks"
    for fact in written:
        assert set(fact.train) <= {"When did the co-op come into being?", "Who runs the co-op?",
                                   "How much does the late payment cost?",
                                   "How many people work for the co-op?"}
    tests = [f for f in result.facts if f.test]
    assert tests and all(f.test not in f.train for f in tests)
    validation = [f for f in result.facts if f.validation]
    assert validation and not any(f.test for f in validation)
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in train_rows(result)))
    examples = load_examples(path, min_examples=2)
    train, val = split_validation(examples, 0.1, 0)
    assert [e.question for e in val] == [f.validation for f in validation]
    assert len(train) == sum(len(f.train) for f in result.facts)


def test_the_writer_command_trains_a_silent_adapter_on_the_located_questions(
        tmp_path, monkeypatch, capsys):
    """`assistant writer` as a user runs it, with the training itself stood in for: the
    located questions are what it trains on, and the adapter never answers users."""
    from types import SimpleNamespace

    from assistant import cli
    from assistant.settings import get_settings

    domain = tmp_path / "water"
    (domain / "docs").mkdir(parents=True)
    (domain / "qa").mkdir()
    facts = [f"The {name} fee is {n}.50 pounds." for n, name in enumerate(
        ["meter", "connection", "reading", "transfer", "survey", "testing", "repair", "late",
         "leak"], start=10)]
    (domain / "docs" / "fees.md").write_text("# Fees\n\n" + "\n\n".join(facts) + "\n")
    pairs = [{"question": f"How much is it ({i})?", "answer": fact,
              "must_contain": [f"{i + 10}.50"], "source": "fees.md"}
             for i, fact in enumerate(facts)]
    (domain / "qa" / "train.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    seen = {}

    def train(name, data, config, settings, overwrite, progress):
        seen.update(name=name, rows=load_examples(data, min_examples=1), config=config)
        return SimpleNamespace(name=name, path=tmp_path / name, card={
            "seconds": 1.0, "epochs_run": 1, "best_val_loss": 1.5})

    monkeypatch.setattr("assistant.commands.train.train_recorded", train)
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        assert cli.main(["writer", "--domains", str(domain), "--name", "w", "--json"]) == 0
        assert seen["name"] == "w" and len(seen["rows"]) == len(facts)
        assert seen["rows"][0].question == f"Section: Fees Sentence: {facts[0]}"
        assert seen["rows"][0].answer == "How much is it (0)?"
        config = seen["config"]
        assert config.system_prompt == SYSTEM_PROMPT and not config.routable
        assert cli.main(["writer", "--domains", str(domain), "--rank", "8"]) == 0
        assert (seen["config"].rank, seen["config"].alpha) == (8, 16)
        (domain / "qa" / "train.jsonl").write_text(json.dumps(pairs[0]) + "\n")
        capsys.readouterr()
        assert cli.main(["writer", "--domains", str(domain)]) == 2
        assert "only 1 questions could be located" in capsys.readouterr().err
        assert cli.main(["writer", "--domains", str(tmp_path / "nowhere")]) == 2
        assert "a domain folder needs docs/ and qa/" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
