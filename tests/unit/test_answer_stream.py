"""The answer's stream runs on its steps alone (answering/stream.py): no pipeline, no model,
no ledger; what it records is what the steps were handed."""

from __future__ import annotations

import pytest

from assistant.answering.answer import Prepared
from assistant.answering.inflight import InFlight
from assistant.answering.modes import Mode
from assistant.answering.routing import Decision
from assistant.answering.stream import AnswerStream, Request
from assistant.ledger.costs import CostBreakdown
from assistant.ledger.store import AnswerRecord
from assistant.ledger.telemetry import Untraced
from assistant.models.generation import Generation, Timings, Usage
from assistant.models.stream import TokenStream


class Steps:
    """Each step as the Pipeline would do it, with fixed results; rows kept in a list."""

    def __init__(self, pieces=("Hello", " there")):
        self.pieces, self.rows = pieces, []

    def begin(self, request):
        return AnswerRecord(question=request.question, requested_mode=request.mode), Untraced()

    def plan(self, question, mode, adapter, domains=None, trace=None):
        if question == "fail":
            raise RuntimeError("the router fell over")
        return Decision(mode=Mode.BASE, adapter=None, reason="base: requested"), [], 1.0

    def messages(self, question, decision, hits, history=(), trace=None):
        return Prepared([{"role": "user", "content": question}])

    def generate(self, messages, params, adapter):
        tokens = TokenStream()
        for piece in self.pieces:
            tokens.put(piece)
        tokens.result = Generation("".join(self.pieces), Usage(3, 2), Timings(), "stop")
        tokens.end()
        return tokens

    def ground(self, question, text, prepared, mode=Mode.PROMPT):
        raise AssertionError("base mode is not checked")

    def may_replace(self, mode):
        return mode.checked

    def price(self, input_tokens, output_tokens, seconds):
        return CostBreakdown(token_usd=0.25, compute_usd=0.5, total_usd=0.75)

    def record_answer(self, answer, started):
        self.rows.append((answer, started))
        return "row-1"

    def record_failure(self, started):
        self.rows.append((None, started))
        return "row-failed"


def test_the_stream_runs_its_steps_and_records_one_answer():
    steps = Steps()
    stream = AnswerStream(steps, InFlight(), Request("Hi?", mode="base"))
    assert list(stream) == ["Hello", " there"]
    answer = stream.result()
    assert (answer.text, answer.mode, answer.cost_usd, answer.ledger_id) == (
        "Hello there", Mode.BASE, 0.75, "row-1")
    assert not stream.replaceable  # base mode: the answer check never replaces it
    assert [(a, row.question) for a, row in steps.rows] == [(answer, "Hi?")]


def test_a_failed_step_records_the_started_row_with_its_error():
    steps = Steps()
    stream = AnswerStream(steps, InFlight(), Request("fail"))
    with pytest.raises(RuntimeError, match="fell over"):
        list(stream)
    [(answer, row)] = steps.rows
    assert answer is None and row.error == "RuntimeError: the router fell over"
    assert stream.ledger_id == "row-failed" and stream.answer is None
