"""The llama.cpp backend on the bundled model's GGUF and the committed demo adapter.

llama-cpp-python comes from `bash .ci/llamacpp.sh install`, which `make test` runs; these
tests fail (they do not skip) without it, so the backend is always tested.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant.backends.llamacpp_accuracy import open_checked
from assistant.backends.lora_gguf import convert
from assistant.errors import AdapterError, StrataError
from assistant.models.base_models import REGISTRY
from assistant.models.generation import SamplingParams

pytestmark = pytest.mark.integration
DEMO = Path("adapters/harrowgate-water")
QUESTION = [{"role": "system", "content": "You are the Harrowgate Valley Water Cooperative "
             "assistant. Answer briefly."},
            {"role": "user", "content": "When was the cooperative founded?"}]
GREEDY = SamplingParams(max_new_tokens=24, temperature=0.0)


def test_the_converted_adapter_moves_llama_cpp_as_peft_moves_the_local_model(tmp_path):
    import llama_cpp
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from assistant.models.base_models import ensure_converted
    from assistant.settings import Settings

    gguf = REGISTRY["smollm2-135m"].locate()
    folder = ensure_converted(REGISTRY["smollm2-135m"], Settings().cache_dir)
    ids = AutoTokenizer.from_pretrained(folder).apply_chat_template(
        QUESTION, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        base = model(torch.tensor([ids])).logits[0, -1].numpy()
        tuned = PeftModel.from_pretrained(model, str(DEMO))(torch.tensor([ids])).logits[0, -1]

    def llama_logits(lora: Path | None) -> np.ndarray:
        llm, _ = open_checked(llama_cpp, gguf, n_ctx=256, verbose=False)  # as the backend
        if lora is not None:
            handle = llama_cpp.llama_adapter_lora_init(llm._model.model, str(lora).encode())
            assert llama_cpp.llama_set_adapter_lora(llm._ctx.ctx, handle, 1.0) == 0
        llm.eval(ids)
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()

    plain = llama_logits(None)
    adapted = llama_logits(convert(DEMO, gguf, tmp_path))
    assert np.corrcoef(base, plain)[0, 1] > 0.99  # Q4_1 against fp32: close, not equal
    # The adapter's effect on the next-token logits, in both engines: a wrong tensor name,
    # scale or the q/k row order would break this agreement.
    assert np.corrcoef(tuned.numpy() - base, adapted - plain)[0, 1] > 0.95


def test_answers_switch_adapters_per_request_and_switch_back_exactly(backend):
    base = backend.generate(QUESTION)
    tuned = backend.generate(QUESTION, adapter="water")
    assert "1987" in tuned.text and tuned.adapter == "water"
    assert tuned.text != base.text
    assert backend.generate(QUESTION).text == base.text  # the adapter is off again
    backend.forget_prompt()
    again = backend.generate(QUESTION, adapter="water")
    assert again.text == tuned.text
    assert again.extra["reused_prompt_tokens"] == 0  # forgotten: the whole prompt is read
    same = backend.generate(QUESTION, adapter="water")  # same adapter: the prefix is reused
    assert same.extra["reused_prompt_tokens"] > 0 and same.text == tuned.text
    # cells are reused only under the adapter that computed them
    assert backend.generate(QUESTION).text == base.text
    assert same.usage.prompt_tokens > same.extra["reused_prompt_tokens"]
    assert same.usage.completion_tokens > 0 and same.timings.total_ms > 0


def test_the_stream_gives_the_answer_in_pieces_and_stops_when_closed(backend):
    whole = backend.generate(QUESTION, adapter="water").text
    assert "".join(backend.stream(QUESTION, adapter="water")) == whole
    stream = backend.stream(QUESTION, GREEDY.with_(max_new_tokens=200))
    next(iter(stream))
    stream.close()
    result = stream.wait()
    assert result.finish_reason == "cancelled" and result.usage.completion_tokens < 200


def test_an_unknown_adapter_or_an_oversized_prompt_is_refused_and_answers_go_on(backend):
    with pytest.raises(AdapterError, match="unknown adapter"):
        backend.stream(QUESTION, adapter="nope")
    with pytest.raises(StrataError, match="exceed llama.cpp's context"):
        backend.stream(QUESTION, GREEDY.with_(max_new_tokens=10_000))
    assert backend.generate(QUESTION, adapter="water").text


def test_an_adapter_trained_on_other_weights_than_llama_cpp_serves_is_said_in_the_log(
        backend, adapters_dir, caplog):
    import json
    import logging

    from assistant.models.adapter_folder import Card, precision_mismatch

    # the bundled adapter was trained on the weights llama.cpp computes with
    assert precision_mismatch("harrowgate-water", Card.read(DEMO), "gguf") is None
    shutil.copytree(DEMO, adapters_dir / "water-nf4")
    card = adapters_dir / "water-nf4" / "card.json"
    card.write_text(json.dumps({**json.loads(card.read_text()), "name": "water-nf4",
                                "quant": "nf4"}))
    with caplog.at_level(logging.WARNING, logger="assistant.backends.llamacpp_loras"):
        backend.loras.load("water-nf4")
    assert ("adapter 'water-nf4' was trained on nf4 weights and is served on llama.cpp's "
            "GGUF 4-bit weights here: it may recall fewer facts") in caplog.text
    caplog.clear()  # reopened after an unload: said once per adapter version
    with caplog.at_level(logging.WARNING, logger="assistant.backends.llamacpp_loras"):
        assert backend.loras.unload("water-nf4")
        backend.loras.load("water-nf4")
    assert "was trained on" not in caplog.text
    weights = adapters_dir / "water-nf4" / "adapter_model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    with caplog.at_level(logging.WARNING, logger="assistant.backends.llamacpp_loras"):
        backend.generate(QUESTION, adapter="water-nf4")  # retrained: a new version, said again
    assert "was trained on nf4 weights" in caplog.text


def test_a_retrained_adapter_is_converted_again(backend, adapters_dir):
    from safetensors.numpy import load_file, save_file

    first = backend.generate(QUESTION, adapter="water").text
    weights = adapters_dir / "water" / "adapter_model.safetensors"
    original = weights.read_bytes()
    try:  # B = 0: the retrained adapter changes nothing, so it answers as the base does
        save_file({k: (v * 0 if ".lora_B." in k else v) for k, v in load_file(weights).items()},
                  weights)
        assert backend.generate(QUESTION, adapter="water").text == backend.generate(
            QUESTION).text != first
    finally:
        weights.write_bytes(original)
    assert backend.generate(QUESTION, adapter="water").text == first


FOUNDED, FEE, RUNS = ("When was the cooperative founded?", "How much is the new connection fee?",
                      "Who runs the cooperative?")


def ask(question: str) -> list[dict[str, str]]:
    return [QUESTION[0], {"role": "user", "content": question}]


def test_mixed_adapters_decode_together_and_answer_as_they_do_alone(backend, adapters_dir):
    """Base, the demo adapter and a second one (the demo's update at half strength), all at
    once: each row decodes under its own adapter only, so every answer is its serial one."""
    from safetensors.numpy import load_file, save_file

    half = adapters_dir / "half"
    if not half.exists():
        shutil.copytree(adapters_dir / "water", half)
        weights = half / "adapter_model.safetensors"
        save_file({k: (v * 0.5 if ".lora_B." in k else v)
                   for k, v in load_file(weights).items()}, weights)
    # questions whose answers do not hang on a near tie (the module doc of llamacpp_batch
    # says why an adapter's near tie may fall either way with the batch's size)
    asked = [(FOUNDED, None), (FOUNDED, "water"), (FEE, "water"), (FEE, None),
             (RUNS, "water"), (RUNS, "half")]
    serial = []
    for question, adapter in asked:
        backend.forget_prompt()
        serial.append(backend.generate(ask(question), adapter=adapter).text)
    assert len({serial[1], serial[0]}) == 2 and len({serial[4], serial[5]}) == 2
    backend.forget_prompt()
    backend.peak_batch = 0
    streams = [backend.stream(ask(question), adapter=adapter) for question, adapter in asked]
    together = [stream.wait() for stream in streams]
    assert backend.peak_batch >= 4  # they were decoded together, not one after another
    assert [g.text for g in together] == serial
    assert [g.adapter for g in together] == [adapter for _, adapter in asked]


def test_a_full_queue_is_refused_and_what_was_queued_is_answered(backend):
    from assistant.errors import QueueFull

    limit, backend.max_queue = backend.max_queue, 2
    try:
        long = GREEDY.with_(max_new_tokens=64)
        streams = []
        with pytest.raises(QueueFull):
            for _ in range(backend.max_batch + 20):
                streams.append(backend.stream(QUESTION, long))
    finally:
        backend.max_queue = limit
    assert len(streams) >= 2
    assert all(s.wait().usage.completion_tokens > 0 for s in streams)


def test_an_adapter_that_cannot_be_converted_fails_its_own_request_only(
        backend, adapters_dir, monkeypatch):
    from assistant.backends import lora_gguf

    broken = adapters_dir / "broken"
    if not broken.exists():
        shutil.copytree(adapters_dir / "water", broken)
    real = lora_gguf.convert

    def convert(folder, *args):  # as for an architecture llama.cpp's LoRA cannot take
        if folder.name == "broken":
            raise StrataError("this adapter cannot be converted")
        return real(folder, *args)

    monkeypatch.setattr(lora_gguf, "convert", convert)
    running = backend.stream(QUESTION, GREEDY.with_(max_new_tokens=48, ignore_eos=True))
    failing = backend.stream(QUESTION, adapter="broken")
    with pytest.raises(StrataError, match="cannot be converted"):
        failing.wait()
    assert running.wait().usage.completion_tokens == 48  # decoded on, to its end
