"""Pairs for an adapter that reads (RAFT): layered mode's exact prompt, the fact among
distractors, and a share with the distractors only."""

from __future__ import annotations

import json
from types import SimpleNamespace

from assistant.answering.prompts import layered_messages
from assistant.training.data import Example, _messages, load_examples
from assistant.training.reading import reading_rows

LINES = [SimpleNamespace(text="The co-op was founded in 1987."),
         SimpleNamespace(text="It employs 63 people.")]


def contexts(question):
    return LINES, lambda shown: " | ".join(line.text for line in shown)


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
