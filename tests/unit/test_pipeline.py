"""The answer pipeline on a tiny model: every mode, one ledger row per answer, threads."""

from __future__ import annotations

import threading

import pytest

from assistant.errors import StrataError
from assistant.models.generation import SamplingParams
from tests.tiny_models import tiny_services

FEES = (
    "# Fees\n\n## Connection\n\nThe new connection fee is 148.50 pounds. "
    "Applications take 17 working days.\n\n## Meters\n\nMeters are read every quarter.\n"
)
PARAMS = SamplingParams(max_new_tokens=6, repetition_penalty=1.0)


@pytest.fixture
def services(tmp_path, tiny_base, adapters_dir):
    services = tiny_services(tmp_path, tiny_base, adapters_dir, FEES,
                             router_retrieval_threshold=0.3, router_adapter_threshold=0.5)
    (adapters_dir / "alpha" / "profile.json").write_text(
        '{"name": "alpha", "description": "water connection fee meters",'
        ' "examples": ["what is the new connection fee"]}'
    )
    return services


def rows(services):
    return services.ledger.rows()


@pytest.mark.parametrize("mode", ["base", "prompt", "adapter", "layered"])
def test_each_mode_answers_and_records_one_row(services, mode):
    answer = services.pipeline.ask("What is the new connection fee?", mode=mode, params=PARAMS)
    assert answer.mode == mode and answer.completion_tokens > 0
    assert (answer.adapter == "alpha") == (mode in ("adapter", "layered"))
    assert bool(answer.sources) == (mode in ("prompt", "layered"))
    if answer.sources:
        assert answer.sources[0].name == "fees.md" and answer.sources[0].score > 0
    [row] = rows(services)
    assert row["id"] == answer.ledger_id and row["error"] is None
    assert row["chosen_mode"] == mode and row["requested_mode"] == mode
    assert row["prompt_tokens"] == answer.prompt_tokens
    assert row["completion_tokens"] == answer.completion_tokens
    assert row["cost_usd"] == pytest.approx(answer.cost_usd) and row["cost_usd"] > 0
    assert len(row["retrieved"]) == len(answer.sources)


def test_ledger_token_counts_equal_the_tokenizer_counts(services):
    pipeline = services.pipeline
    question = "What is the new connection fee?"
    decision, hits, _ = pipeline.plan(question, "prompt", None)
    messages = pipeline.messages(question, decision, hits).messages
    answer = pipeline.ask(question, mode="prompt", params=PARAMS)
    tokenizer = services.base.tokenizer
    expected_prompt = len(tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
    row = rows(services)[0]
    assert row["prompt_tokens"] == expected_prompt
    # Completion tokens are the generated ids themselves (re-encoding text can differ).
    assert row["completion_tokens"] == answer.completion_tokens <= PARAMS.max_new_tokens


def test_auto_routes_domain_questions_to_the_adapter_and_explains(services):
    answer = services.pipeline.ask("what is the new connection fee", params=PARAMS)
    assert answer.mode in ("adapter", "layered") and answer.adapter == "alpha"
    assert "adapter alpha: similarity" in answer.reason
    off = services.pipeline.ask("zebra xylophone quantum", params=PARAMS)
    assert off.mode in ("base", "prompt") and off.adapter is None
    assert [r["chosen_mode"] for r in rows(services)] == [answer.mode, off.mode]


@pytest.mark.parametrize(
    "question, mode, adapter, message",
    [
        ("", "auto", None, "the question is empty"),
        ("hello", "sideways", None, "unknown mode"),
        ("hello", "adapter", "ghost", "unknown adapter"),
        ("x" * 5000, "base", None, "too long"),
    ],
)
def test_failures_raise_clearly_and_are_recorded_once(services, question, mode, adapter, message):
    with pytest.raises(StrataError, match=message):
        services.pipeline.ask(question, mode=mode, adapter=adapter, params=PARAMS)
    [row] = rows(services)
    assert message.split()[0] in row["error"]
    services.pipeline.ask("hello", mode="base", params=PARAMS)  # still works afterwards
    assert len(rows(services)) == 2


def test_a_reader_that_stops_early_still_gets_one_row(services):
    params = SamplingParams(max_new_tokens=50, repetition_penalty=1.0)
    stream = services.pipeline.stream("hello", mode="base", params=params)
    iterator = iter(stream)
    next(iterator)
    iterator.close()
    [row] = rows(services)
    assert "cancelled" in row["error"]
    assert stream.ledger_id == row["id"]  # the stopped answer can still be voted on


def test_concurrent_answers_are_all_recorded(services):
    ids, errors = [], []

    def worker(i):
        try:
            mode = ["base", "adapter", "prompt"][i % 3]
            ids.append(services.pipeline.ask(f"connection fee {i}", mode=mode, params=PARAMS,
                                             session_id=f"s{i}").ledger_id)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r["id"] for r in rows(services)) == sorted(ids)
    assert {r["session_id"] for r in rows(services)} == {f"s{i}" for i in range(6)}


def test_prompt_mode_with_no_passage_declines_without_asking_the_model(services, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the model must not be asked without context")

    monkeypatch.setattr(services.generator, "stream", no_model)
    monkeypatch.setattr(services.store, "search", lambda *a, **k: [])
    answer = services.pipeline.ask("zebra xylophone quantum", mode="prompt", params=PARAMS)
    assert answer.text == "The documents do not say." and answer.sources == []
    assert answer.finish_reason == "no_context" and answer.prompt_tokens == 0
    [row] = rows(services)
    assert row["answer"] == answer.text and row["error"] is None and row["chosen_mode"] == "prompt"


FIRST_TURN = [{"role": "user", "content": "What is the new connection fee?"},
              {"role": "assistant", "content": "It is 148.50 pounds."}]


def test_a_follow_up_is_searched_with_its_standalone_query_and_reads_the_history(services):
    seen = []
    generate = services.generator.stream
    services.generator.stream = lambda messages, *a, **k: seen.append(messages) or generate(
        messages, *a, **k)
    alone = services.pipeline.ask("How long does it take?", mode="prompt", params=PARAMS)
    follow = services.pipeline.ask("How long does it take?", mode="prompt", params=PARAMS,
                                   history=FIRST_TURN)
    assert alone.standalone_query is None and alone.history_turns == 0
    assert follow.standalone_query == "What is the new connection fee? How long does it take?"
    assert follow.history_turns == 2 and follow.sources[0].name == "fees.md"
    assert follow.sources[0].score > (alone.sources[0].score if alone.sources else 0.0)
    messages = seen[-1]
    assert messages[-3:-1] == FIRST_TURN and messages[-1]["role"] == "user"
    assert messages[-1]["content"].endswith("Question: How long does it take?")


def test_a_follow_up_s_sentences_are_ranked_for_the_follow_up_not_the_earlier_turn(services):
    stream = services.pipeline.stream("How long does it take?", mode="prompt", params=PARAMS,
                                      history=FIRST_TURN)
    stream.result()
    # searched with both turns, but the sentence the model reads first answers the new one
    assert stream.standalone.query.startswith("What is the new connection fee?")
    assert "17 working days" in stream.prepared.ranked[0].text


def test_a_topic_change_leaves_the_old_topic_out_of_search_and_messages(services):
    answer = services.pipeline.ask("Thanks. Unrelated: zebra xylophone quantum?",
                                   mode="auto", params=PARAMS, history=FIRST_TURN)
    assert answer.standalone_query == "zebra xylophone quantum?"
    assert answer.history_turns == 0 and answer.mode in ("base", "prompt")
    assert answer.adapter is None


def test_a_history_of_the_wrong_shape_is_refused_before_anything_runs(services):
    with pytest.raises(StrataError, match="role must be user or assistant"):
        services.pipeline.ask("And?", history=[{"role": "tool", "content": "x"}])


def test_an_answers_ledger_row_holds_every_field_it_shares_with_the_answer():
    """ledger_record is the one place an answer becomes its row: each field of the answer
    the row has (by name, or as RECORD_NAMES renames it) is copied, except the question and
    requested mode, which stay as the row began."""
    from dataclasses import fields
    from types import SimpleNamespace

    from assistant.answering.answer import (
        AS_STARTED,
        RECORD_NAMES,
        Answer,
        Served,
        Source,
        ledger_record,
    )
    from assistant.answering.modes import Mode
    from assistant.ledger.store import AnswerRecord

    source = Source(1, "fees.md", "Fees", None, 0.8, "The fee is 148.50.", "c1")
    answer = Answer(question="What is the fee?  ", text="148.50", requested_mode="auto",
                    mode=Mode.PROMPT, adapter=None, reason="prompt: covered",
                    scores={"retrieval": 0.8}, sources=[source], prompt_tokens=50,
                    completion_tokens=4, router_ms=1.0, retrieval_ms=2.0, ttft_ms=3.0,
                    total_ms=40.0, tokens_per_s=20.0, cost_usd=0.3, finish_reason="stop",
                    grounding="quoted: x", token_cost_usd=0.1, compute_cost_usd=0.2,
                    generated="it is free", standalone_query="fee?", history_turns=2,
                    extra=Served(ranking="likelihood"))
    started = AnswerRecord(question="What is the fee?", session_id="s", requested_mode="auto",
                           backend="local", profile="default")
    row = ledger_record(answer, started, SimpleNamespace(name="tiny", quant="nf4"), "cpu")
    columns = {f.name for f in fields(AnswerRecord)}
    for f in fields(Answer):
        column = RECORD_NAMES.get(f.name, f.name)
        if column in columns and column not in AS_STARTED:
            assert getattr(row, column) == getattr(answer, f.name), column
    assert (row.id, row.created_at, row.question) == (started.id, started.created_at,
                                                      started.question)
    assert row.chosen_mode == "prompt" and row.answer == "148.50"
    assert row.retrieved == [{"id": "c1", "score": 0.8}] and row.ranking == "likelihood"
    assert (row.base_model, row.quantization, row.hardware) == ("tiny", "nf4", "cpu")
    assert (row.session_id, row.backend, row.profile) == ("s", "local", "default")


def test_an_engine_with_weights_of_its_own_records_their_type_not_the_bases(services):
    """llama.cpp answers from its GGUF (Q4_1), not from the NF4 torch base the settings
    name: its rows say what ran; an engine that does not say keeps the base's."""
    pipeline = services.pipeline
    before = pipeline.ask("What is the new connection fee?", mode="base", params=PARAMS)
    pipeline.backend.quantization = "q4_1"
    after = pipeline.ask("What is the new connection fee?", mode="base", params=PARAMS)
    quantization = {row["id"]: row["quantization"] for row in rows(services)}
    assert quantization == {before.ledger_id: services.base.quant, after.ledger_id: "q4_1"}


def test_the_gguf_type_is_named_as_llama_cpp_names_it():
    from types import SimpleNamespace

    from assistant.backends.llamacpp import gguf_type

    llama_cpp = SimpleNamespace(LLAMA_FTYPE_ALL_F32=0, LLAMA_FTYPE_MOSTLY_Q4_1=3,
                                LLAMA_FTYPE_MOSTLY_Q4_K_M=15, LLAMA_FTYPE_GUESSED=1024)
    assert gguf_type(llama_cpp, {"general.file_type": "3"}) == "q4_1"  # the bundled GGUF
    assert gguf_type(llama_cpp, {"general.file_type": "15"}) == "q4_k_m"
    assert gguf_type(llama_cpp, {"general.file_type": "0"}) == "f32"
    assert gguf_type(llama_cpp, {"general.file_type": "99"}) == "gguf"
    assert gguf_type(llama_cpp, {}) == "gguf"
