"""Continuous batching: concurrent answers over two adapters and the base, each the same
as it would be alone; rows that join late, leave early or are cancelled."""

from __future__ import annotations

import threading
import time

import pytest

from assistant.errors import AdapterError, QueueFull
from assistant.models.adapters import AdapterManager
from assistant.models.generation import Generator, SamplingParams

GREEDY = SamplingParams(max_new_tokens=10, repetition_penalty=1.0, ignore_eos=True)
QUESTIONS = ["What is the capital of France?", "Name a colour.", "Count to five please.",
             "Why is the sky blue?", "Tell me a joke about water meters.", "Hello!",
             "Summarise the tariff schedule in one sentence.", "What is two plus two?"]
ADAPTERS = [None, "alpha", "beta", "alpha", None, "beta", "alpha", None]


def messages(question):
    return [{"role": "user", "content": question}]


@pytest.fixture
def manager(adapters_dir, tiny_base):
    return AdapterManager(adapters_dir, tiny_base)


def serial_answers(manager, params_for):
    alone = Generator(manager, max_batch=1)
    return [alone.generate(messages(q), params_for(i), adapter=a)
            for i, (q, a) in enumerate(zip(QUESTIONS, ADAPTERS))]


def concurrent_answers(generator, params_for):
    results = [None] * len(QUESTIONS)
    start = threading.Barrier(len(QUESTIONS))

    def ask(i):
        start.wait()
        results[i] = generator.generate(messages(QUESTIONS[i]), params_for(i),
                                        adapter=ADAPTERS[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(QUESTIONS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_eight_concurrent_greedy_answers_equal_their_serial_answers(manager):
    # Different lengths, so rows join with different prompt lengths and leave at different steps.
    def params_for(i):
        return GREEDY.with_(max_new_tokens=6 + i)

    serial = serial_answers(manager, params_for)
    batched = Generator(manager, max_batch=8)
    together = concurrent_answers(batched, params_for)
    assert [r.text for r in together] == [r.text for r in serial]
    assert [r.usage.completion_tokens for r in together] == [6 + i for i in range(8)]
    assert [r.adapter for r in together] == ADAPTERS
    assert batched.batcher.peak_batch > 1  # they really shared forward passes


def test_a_batch_of_two_takes_the_rest_in_turn(manager):
    serial = serial_answers(manager, lambda i: GREEDY)
    batched = Generator(manager, max_batch=2)
    assert [r.text for r in concurrent_answers(batched, lambda i: GREEDY)] == [
        r.text for r in serial]
    assert batched.batcher.peak_batch == 2


def test_a_cancelled_row_leaves_at_the_next_step_and_the_others_finish(manager):
    generator = Generator(manager, max_batch=4)
    step = generator.batcher._step
    generator.batcher._step = lambda: (time.sleep(0.005), step())  # slow enough to cancel
    long = GREEDY.with_(max_new_tokens=200)
    streams = [generator.stream(messages(q), long, adapter=a)
               for q, a in zip(QUESTIONS[:3], ADAPTERS[:3])]
    first = streams[1]
    next(iter(first))  # it started
    first.close()
    cancelled = first.wait()
    assert cancelled.finish_reason == "cancelled" and cancelled.usage.completion_tokens < 200
    for stream in (streams[0], streams[2]):
        assert stream.wait().usage.completion_tokens == 200


def test_a_full_queue_refuses_with_a_clear_error(manager):
    generator = Generator(manager, max_batch=1, max_queue=1)
    slow = GREEDY.with_(max_new_tokens=400)
    running = generator.stream(messages("one"), slow)
    next(iter(running))  # the worker took it: the queue is empty again
    waiting = generator.stream(messages("two"), slow)
    with pytest.raises(QueueFull, match="1 requests are already waiting"):
        generator.stream(messages("three"), slow)
    running.close(), waiting.close()
    running.wait(), waiting.wait()


def test_an_unknown_adapter_fails_its_request_only(manager):
    generator = Generator(manager, max_batch=4)
    good = generator.stream(messages("Hello"), GREEDY)
    manager.check = lambda name: {}  # let the bad name through to the batcher
    bad = generator.stream(messages("Hello"), GREEDY, adapter="ghost")
    with pytest.raises(AdapterError, match="'ghost'"):
        bad.wait()
    assert good.wait().usage.completion_tokens == GREEDY.max_new_tokens


def test_prefill_runs_on_all_threads_and_decode_steps_on_decode_threads(manager, monkeypatch):
    import torch

    from assistant.models import batching

    seen = []
    real = batching.Batcher._step

    def step(self):
        seen.append(("step", torch.get_num_threads()))
        return real(self)

    prefill = batching.Batcher._prefill

    def prefilled(self, request):
        result = prefill(self, request)
        seen.append(("prefill", torch.get_num_threads()))
        return result

    monkeypatch.setattr(batching.Batcher, "_step", step)
    monkeypatch.setattr(batching.Batcher, "_prefill", prefilled)
    generator = Generator(manager, max_batch=2, decode_threads=1)
    generator.generate(messages(QUESTIONS[0]), GREEDY.with_(max_new_tokens=4))
    all_threads = generator.batcher.prefill_threads
    assert ("prefill", all_threads) in seen
    steps = [count for kind, count in seen if kind == "step"]
    # _step sets its threads before the forward pass: from the second step on, one thread
    assert steps and set(steps[1:]) <= {1}
    assert Generator(manager, decode_threads=0).batcher.decode_threads == all_threads
