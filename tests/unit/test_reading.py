"""Pairs for an adapter that reads (RAFT): layered mode's exact prompt, the fact among
distractors, and a share with the distractors only."""

from __future__ import annotations

import json
from types import SimpleNamespace

from assistant.answering.prompts import ContextLine, condense, format_context, layered_messages
from assistant.training.data import Example, _messages, load_examples
from assistant.training.reading import Shown, reading_rows

LINES = [SimpleNamespace(text="The co-op was founded in 1987."),
         SimpleNamespace(text="It employs 63 people.")]


def contexts(question):
    return Shown(LINES, lambda shown: " | ".join(line.text for line in shown))


def example(i, must=("1987",)):
    return Example(f"When was it founded ({i})?", "In 1987.", i, "founded", tuple(must))


def test_each_pair_reads_what_layered_mode_shows_and_a_share_only_distractors():
    rows, counts = reading_rows([example(i) for i in range(200)], contexts, seed=0)
    assert counts["with_fact"] + counts["distractors_only"] == 200
    assert 20 <= counts["distractors_only"] <= 60  # about a fifth
    whole = [r for r in rows if "1987" in r["context"]]
    assert whole[0]["context"] == "The co-op was founded in 1987. | It employs 63 people."
    assert all(r["context"] == "It employs 63 people." for r in rows if r not in whole)
    assert all(r["answer"] == "In 1987." for r in rows)  # the answer stays


def test_a_question_whose_passages_lack_its_fact_makes_no_pair_and_is_counted():
    rows, counts = reading_rows([example(0, must=("2001",)), example(1)], contexts)
    assert counts["fact_not_retrieved"] == 1
    assert [r["must_contain"] for r in rows] == [["1987"]]


def test_a_reading_row_trains_on_layered_modes_exact_prompt(tmp_path):
    rows, _ = reading_rows([example(i) for i in range(8)], contexts)
    path = tmp_path / "reading.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_examples(path)
    first = loaded[0]
    assert first.context == rows[0]["context"]
    assert _messages("You know the co-op.", first.question, first.context) == \
        layered_messages(first.question, first.context, "You know the co-op.")
    assert _messages("You know the co-op.", first.question) == [
        {"role": "system", "content": "You know the co-op."},
        {"role": "user", "content": first.question}]


def test_train_reading_refuses_when_no_question_finds_its_fact(tmp_path, monkeypatch):
    import pytest

    import assistant.services
    import assistant.training.reading as reading
    from assistant.commands.train import reading_file
    from assistant.errors import TrainingDataError
    from assistant.settings import Settings

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"question": f"When was it founded ({i})?",
                                        "answer": "In 2001.", "must_contain": ["2001"]}) + "\n"
                            for i in range(9)))
    monkeypatch.setattr(assistant.services, "Services", lambda settings: SimpleNamespace(
        pipeline=None))
    monkeypatch.setattr(reading, "pipeline_contexts", lambda pipeline, domain: contexts)
    with pytest.raises(TrainingDataError, match="none of the 9 questions.*assistant ingest"):
        reading_file(Settings(data_dir=tmp_path / "data"), "reader", data, None, 0, False)


def ranked_passages():
    """Layered mode's context for a question written from its fact's sentence: the fact's
    passage [1] alone fills the budget; passages 2 and 3 were retrieved too."""
    fact = ContextLine(1, "History", "The co-op was founded in 1987.", 0.9, 0)
    more = ContextLine(1, "History", "Its first office, rented from the parish for a "
                       "shilling a year, stood on Mill Lane beside the old tannery.", 0.8, 1)
    staff = ContextLine(2, "Staff", "It employs 63 people.", 0.5, 0)
    board = ContextLine(3, "Board", "The board meets monthly.", 0.4, 0)
    ranked = [fact, more, staff, board]

    def fit(priority):
        return condense(priority, lambda text: len(text.split()), 40)

    return Shown(fit(ranked), format_context, ranked, fit)


def test_a_spread_context_shows_the_fact_beside_other_passages_in_any_place():
    shown = ranked_passages()
    assert format_context(shown.lines).count("\n") == 0  # one passage, as layered mode shows it
    rows, counts = reading_rows([example(i) for i in range(60)], lambda q: shown, seed=1,
                                distractors_only=0, spread_share=1.0)
    assert counts["spread"] == 60
    places = set()
    for row in rows:
        blocks = row["context"].split("\n")
        assert 2 <= len(blocks) <= 3  # the fact's passage and one or two others
        assert sum("1987" in b for b in blocks) == 1
        places.add(next(i for i, b in enumerate(blocks) if "1987" in b))
        assert "Mill Lane" not in row["context"]  # the budget: it made room for the others
    assert places == {0, 1, 2}  # the fact's passage is not always first


def test_no_spread_keeps_layered_modes_own_context_and_draws():
    import random

    shown = ranked_passages()
    rows, _ = reading_rows([example(i) for i in range(40)], lambda q: shown, seed=3)
    draws = random.Random(3)
    assert ["1987" not in r["context"] for r in rows] == [draws.random() < 0.2 for _ in rows]
    assert all(r["context"] == format_context(shown.lines) for r in rows
               if "1987" in r["context"])
    spread_rows, counts = reading_rows([example(i) for i in range(40)], lambda q: shown,
                                       seed=3, spread_share=0.5)
    assert 0 < counts["spread"] < 40  # the same distractor-only pairs, spread or not
    assert ["1987" not in r["context"] for r in spread_rows] == \
        ["1987" not in r["context"] for r in rows]


def test_a_spread_distractors_only_pair_keeps_the_other_passages_without_the_fact():
    rows, counts = reading_rows([example(i) for i in range(10)], lambda q: ranked_passages(),
                                distractors_only=1.0, spread_share=1.0)
    assert counts["spread"] == counts["distractors_only"] == 10
    assert all("1987" not in r["context"] and r["context"] for r in rows)


def test_no_spread_when_the_fact_leaves_no_room_or_would_lose_a_part():
    shown = ranked_passages()
    tight = Shown(shown.lines, format_context, shown.ranked,
                  lambda priority: condense(priority, lambda text: len(text.split()), 12))
    rows, counts = reading_rows([example(0)], lambda q: tight, distractors_only=0,
                                spread_share=1.0)
    assert counts["spread"] == 0 and counts["no_room"] == 1
    assert rows[0]["context"] == format_context(tight.lines)
    two_parts = example(1, must=("1987", "Mill Lane"))  # both sentences of passage 1
    rows, counts = reading_rows([two_parts], lambda q: shown, distractors_only=0,
                                spread_share=1.0)
    assert "1987" in rows[0]["context"] and "Mill Lane" in rows[0]["context"]


def test_layered_contexts_come_from_the_pipelines_ranking_and_budget():
    from assistant.training.reading import pipeline_contexts

    shown = ranked_passages()
    prepared = SimpleNamespace(lines=shown.lines, ranked=shown.ranked)
    pipeline = SimpleNamespace(
        plan=lambda question, mode, adapter, domains: (None, ["hit"], None),
        messages=lambda question, decision, hits: prepared,
        backend=SimpleNamespace(count_tokens=lambda text: len(text.split())),
        profile=SimpleNamespace(max_context_tokens=40))
    got = pipeline_contexts(pipeline, "d")("When was it founded?")
    assert got.lines == shown.lines and got.ranked == shown.ranked
    assert got.fit(list(reversed(shown.ranked))) == shown.fit(list(reversed(shown.ranked)))


def test_train_reading_takes_a_spread_share_and_refuses_one_outside_0_to_1(tmp_path, capsys):
    from assistant.cli import main

    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"question": "When?", "answer": "In 1987."}) + "\n")
    assert main(["train", "--name", "r", "--data", str(data), "--reading",
                 "--spread", "1.5"]) == 2
    assert "--spread must be between 0 and 1, not 1.5" in capsys.readouterr().err


def test_train_reading_writes_spread_contexts_when_asked(tmp_path, monkeypatch):
    import assistant.services
    import assistant.training.reading as reading
    from assistant.commands.train import reading_file
    from assistant.settings import Settings

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"question": f"When was it founded ({i})?",
                                        "answer": "In 1987.", "must_contain": ["1987"]}) + "\n"
                            for i in range(20)))
    shown = ranked_passages()
    monkeypatch.setattr(assistant.services, "Services", lambda settings: SimpleNamespace(
        pipeline=None))
    monkeypatch.setattr(reading, "pipeline_contexts", lambda pipeline, domain: lambda q: shown)
    settings = Settings(data_dir=tmp_path / "data")
    for spread, blocks in ((0.0, {1}), (1.0, {3})):  # the budget has room for all three
        out = reading_file(settings, "reader", data, None, 0, False, spread)
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert {len(r["context"].split("\n")) for r in rows if "1987" in r["context"]} == blocks


def test_spread_without_reading_is_refused(tmp_path, capsys):
    from assistant.cli import main

    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"question": "When?", "answer": "In 1987."}) + "\n")
    assert main(["train", "--name", "r", "--data", str(data), "--spread", "0.5"]) == 2
    assert "give it with --reading" in capsys.readouterr().err
