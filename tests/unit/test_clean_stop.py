"""A stopping server (SIGTERM / SIGINT to `assistant serve`) ends its answers in flight with
ledger rows that say cancelled, refuses new ones, interrupts a training run and closes its
stores; a /v1 stream whose task is cancelled while a worker thread waits for the next token
closes without "generator already executing". The server streams slowly here (httpx's
MockTransport), so the stop always comes mid-answer; the real signal is the e2e tier's."""

from __future__ import annotations

import json
import threading
import time

import anyio
import httpx
import pytest

from assistant.errors import AnswerCancelled
from tests.unit.test_backends import FakeServer
from tests.unit.test_remote_callers import remote_services

QUESTION = "What is the new connection fee?"


class SlowServer(FakeServer):
    """Streams one word every ``pause`` seconds, up to 200 of them."""

    def __init__(self, pause: float = 0.2) -> None:
        super().__init__()
        self.pause = pause

    def chat(self, body: dict) -> httpx.Response:
        def events():
            for _ in range(200):
                time.sleep(self.pause)
                delta = {"choices": [{"index": 0, "delta": {"content": " word"},
                                      "finish_reason": None}]}
                yield f"data: {json.dumps(delta)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return httpx.Response(200, content=events(),
                              headers={"content-type": "text/event-stream"})


@pytest.fixture
def slow(tmp_path, request):
    """Services over a server that streams slowly: one word every 0.02 s, or every
    ``request.param`` seconds (``parametrize("slow", [pause], indirect=True)``)."""
    return remote_services(tmp_path, SlowServer(pause=getattr(request, "param", 0.02)))


@pytest.fixture
def start_training(slow, monkeypatch):
    """Start run ``name`` on ``slow`` over 20 pairs, its training loop replaced by ``step``
    (given the cancel event), which then ends as a cancelled loop does."""

    def start(name: str, step) -> None:
        def train(name, data, config, settings, *, cancel, **kwargs):
            step(cancel)
            from assistant.errors import TrainingCancelled
            raise TrainingCancelled("cancelled")

        monkeypatch.setattr("assistant.training.loop.train_adapter", train)
        data = slow.settings.data_dir / "pairs.jsonl"
        data.parent.mkdir(parents=True, exist_ok=True)
        data.write_text("".join(json.dumps({"question": f"q{i}?", "answer": f"a{i}."}) + "\n"
                                for i in range(20)))
        slow.training.start(name, data)

    return start


def test_stop_ends_answers_in_flight_as_cancelled_and_refuses_new_ones(slow):
    pieces = iter(slow.pipeline.stream(QUESTION, mode="base"))
    assert next(pieces)
    threading.Timer(0.1, slow.stop).start()
    started = time.monotonic()
    with pytest.raises(AnswerCancelled, match="stopping"):
        for _ in pieces:
            pass
    assert time.monotonic() - started < 2  # not the 4 s the whole answer would take
    assert slow.ledger.rows()[-1]["error"] == "cancelled: the server is stopping"
    with pytest.raises(AnswerCancelled):
        slow.pipeline.ask(QUESTION, mode="base")
    assert len(slow.pipeline.in_flight) == 0


@pytest.mark.parametrize("slow", [0.3], indirect=True)
def test_a_stream_whose_reader_leaves_while_a_token_is_awaited_is_closed_as_cancelled(slow):
    """Starlette cancels the response's scope when its client leaves (and uvicorn at
    shutdown) while a worker thread waits inside the event generator for the next token."""
    from assistant.api.answers import Completion
    from assistant.api.app import Slots, _sse
    from assistant.api.requests import parse_chat

    chat = parse_chat({"model": "strata-base", "stream": True,
                       "messages": [{"role": "user", "content": QUESTION}]})
    run = Completion(slow.pipeline.stream(QUESTION, mode="base"), chat)
    run.start()
    slots = Slots(1)
    read: list[str] = []

    async def read_then_leave() -> None:
        events = _sse(run, chat, slots.take())
        with anyio.move_on_after(0.8):  # the role chunk and a piece or two, then gone
            async for event in events:
                read.append(event)
        await events.aclose()

    started = time.monotonic()
    anyio.run(read_then_leave)
    assert 1 <= len(read) < 10 and time.monotonic() - started < 3  # not all 200 words
    row = slow.ledger.rows()[-1]
    assert row["error"].startswith("cancelled"), row
    assert slots.used == 0 and len(slow.pipeline.in_flight) == 0


def test_stop_interrupts_training_and_close_closes_the_stores(slow, start_training):
    def steps(cancel: threading.Event) -> None:
        while not cancel.is_set():  # a training loop checks cancel after each step
            time.sleep(0.01)

    start_training("fresh", steps)
    slow.ledger  # noqa: B018 - built, so close() closes it
    slow.stop()
    assert slow.training.status().state == "interrupted"  # at once: pages stop following it
    slow.close(training_wait_s=2)
    assert not slow.training._thread.is_alive()  # it reached its safe point
    assert slow.training.status().state == "interrupted"  # not overwritten by "cancelled"
    with pytest.raises(Exception, match="closed"):
        slow.ledger.rows()
    from assistant.ledger.store import Ledger, location

    reopened = Ledger(location(slow.settings))  # what the next start finds
    (run,) = reopened.trainings("fresh")
    assert run["state"] == "interrupted" and run["card"]["state"] == "interrupted"
    assert run["seconds"] >= 0 and run["card"]["message"].startswith("interrupted at step")
    reopened.close()


def test_a_run_that_outlives_the_wait_is_recorded_as_interrupted_once(slow, start_training):
    """The app closes the ledger after a short wait: the run is on record by then, and its
    thread, reaching its safe point later, does not record it again."""
    release = threading.Event()
    start_training("long-step", lambda cancel: release.wait(10))  # a step past the app's wait
    slow.stop()
    assert slow.training.wait(0.2).state == "interrupted"  # the thread is still in its step
    assert [r["state"] for r in slow.ledger.trainings("long-step")] == ["interrupted"]
    release.set()
    slow.training.wait(5)
    assert [r["state"] for r in slow.ledger.trainings("long-step")] == ["interrupted"]


def test_a_web_chat_answer_in_flight_ends_with_a_message_and_a_cancelled_row(slow):
    from assistant.access import Access
    from assistant.ui.chat import answer_stream
    from assistant.ui.common import Context
    from tests.unit.ui_fakes import request

    ctx = Context(slow, Access(slow.settings))
    updates = answer_stream(ctx, QUESTION, [], "base", "", request())
    next(updates), next(updates)  # the question, then the first piece
    slow.stop()
    *_, (history, _, details) = list(updates)
    assert "the server is stopping" in history[-1]["content"] and details["error"]
    assert slow.ledger.rows()[-1]["error"] == "cancelled: the server is stopping"


def test_the_server_stops_once_on_a_signal_and_does_not_raise_it_again():
    """uvicorn re-raises a captured signal after its shutdown (exit 143 / KeyboardInterrupt
    instead of 0); the app's server clears it. Guards uvicorn's private attribute too."""
    import signal

    import uvicorn
    from fastapi import FastAPI

    from assistant.server import _Uvicorn

    stops: list[int] = []
    server = _Uvicorn(uvicorn.Config(FastAPI()))
    server.on_stop = lambda: stops.append(1)
    server.handle_exit(signal.SIGTERM, None)
    server.handle_exit(signal.SIGINT, None)  # a second one forces the exit, stops nothing twice
    assert server.should_exit and server.force_exit and stops == [1]
    assert server._captured_signals == []
