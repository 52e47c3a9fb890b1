"""The default engine on the bundled model: llama.cpp answers when its logits check passes,
and the app falls back to the local generator, saying why, when the check refuses it.
(A host without llama-cpp-python: tests/unit/test_engine.py.)"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from assistant.backends import engine, llamacpp_accuracy
from assistant.backends.llamacpp import LlamaCppBackend
from assistant.services import Services
from assistant.settings import Settings

pytestmark = pytest.mark.integration
HELLO = [{"role": "user", "content": "What is the capital of France?"}]


def services_over(real_base, tmp_path, **settings) -> Services:
    return Services(Settings(_env_file=None, data_dir=tmp_path / "data",
                             adapters_dir=tmp_path / "adapters", max_new_tokens=8, **settings),
                    base=real_base)


def test_the_default_settings_answer_with_llama_cpp_on_one_decode_thread(real_base, tmp_path):
    services = services_over(real_base, tmp_path)
    backend = services.backend
    assert isinstance(backend, LlamaCppBackend)
    assert services.engine.engine == "llamacpp" and not services.engine.fallback
    # prompts are read on every core, each decode step on one (the module doc says why)
    assert (backend.seqs.decode_threads, backend.seqs.threads) == (1, os.cpu_count())
    answer = backend.generate(HELLO)
    assert answer.usage.completion_tokens > 0 and answer.text.strip()
    assert "generator" not in services._parts  # the torch generator was never built
    assert engine.check(services.settings).engine == "llamacpp"
    # adapters train on the weights llama.cpp computes with (the GGUF's, dequantised)
    assert services.training.quant == "fp32"


def test_a_refused_logits_check_falls_back_to_the_local_generator_and_says_why(
        real_base, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(llamacpp_accuracy, "MIN_CORRELATION", 1.01)  # no path can pass
    services = services_over(real_base, tmp_path)
    with caplog.at_level(logging.WARNING, logger="assistant.services"):
        backend = services.backend
    assert backend.name == "local" and services.engine.fallback
    assert "fallback: llama.cpp did not open: llama.cpp's logits disagree" in caplog.text
    assert backend.generate(HELLO).usage.completion_tokens > 0
    assert services.training.quant == real_base.quant  # served by the local base: its own
    checked = engine.check(services.settings)  # what `assistant models` shows
    assert checked.fallback and "logits disagree" in checked.reason
    with pytest.raises(Exception, match="logits disagree"):  # named: no fallback
        services_over(real_base, tmp_path, backend="llamacpp").backend  # noqa: B018


def test_a_fallback_serves_the_bundled_adapter_on_the_weights_it_learnt(
        tmp_path, monkeypatch, caplog):
    """The default settings, no base handed in: the torch base that stands in for llama.cpp
    is the GGUF's values in fp32, the weights the bundled adapter was trained on for
    llama.cpp, so it loads without a precision warning and new adapters train there too."""
    monkeypatch.setattr(llamacpp_accuracy, "MIN_CORRELATION", 1.01)  # no path can pass
    shutil.copytree(Path("adapters/harrowgate-water"), tmp_path / "adapters" / "harrowgate-water")
    services = Services(Settings(_env_file=None, data_dir=tmp_path / "data",
                                 adapters_dir=tmp_path / "adapters", max_new_tokens=8))
    with caplog.at_level(logging.WARNING):
        answer = services.backend.generate(HELLO, adapter="harrowgate-water")
    assert services.engine.fallback and answer.usage.completion_tokens > 0
    assert services.base.quant == "fp32" and services.training.quant == "fp32"
    assert "was trained on" not in caplog.text  # no precision mismatch
