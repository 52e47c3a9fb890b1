"""The real bundled SmolLM2 in 4-bit: it answers, and its conversion cache is reused."""

from __future__ import annotations

import logging

import pytest

from assistant.models import base_models
from assistant.models.adapters import AdapterManager
from assistant.models.generation import Generator, SamplingParams

pytestmark = pytest.mark.integration


def test_nf4_model_answers_the_capital_of_france(real_base, tmp_path):
    assert real_base.quant == "nf4"
    assert real_base.footprint_bytes < 200 * 2**20  # fp32 would be ~540 MB
    generator = Generator(AdapterManager(tmp_path, real_base), SamplingParams(max_new_tokens=24))
    result = generator.generate([{"role": "user", "content": "What is the capital of France?"}])
    assert "Paris" in result.text
    assert result.usage.prompt_tokens == len(
        generator.encode_chat([{"role": "user", "content": "What is the capital of France?"}])
    )
    assert result.timings.tokens_per_s > 0


def test_conversion_runs_once_then_the_cache_is_reused(tmp_path, monkeypatch, caplog):
    spec = base_models.REGISTRY["smollm2-135m"]
    caplog.set_level(logging.INFO, logger=base_models.__name__)
    first = base_models.ensure_converted(spec, tmp_path)
    assert (first / "model.safetensors").is_file() and "converting" in caplog.text

    def must_not_convert(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(base_models, "_convert_gguf", must_not_convert)
    assert base_models.ensure_converted(spec, tmp_path) == first
    loaded = base_models.load_base_model("smollm2-135m", tmp_path, "bf16")
    assert loaded.quant == "bf16" and loaded.source == str(first)


def test_nf4_falls_back_with_one_clear_log_line(tmp_path, monkeypatch, caplog):
    def no_bnb(device):
        raise ImportError("bitsandbytes is not installed")

    base_models.ensure_converted(base_models.REGISTRY["smollm2-135m"], tmp_path)
    monkeypatch.setattr(base_models, "nf4_kwargs", no_bnb)
    caplog.set_level(logging.WARNING, logger=base_models.__name__)
    loaded = base_models.load_base_model("smollm2-135m", tmp_path, "nf4")
    assert loaded.quant == "bf16"
    warnings = [r for r in caplog.records if "falling back" in r.getMessage()]
    assert len(warnings) == 1 and "bitsandbytes is not installed" in warnings[0].getMessage()


def test_unknown_local_path_is_a_clear_error(tmp_path):
    with pytest.raises(base_models.ModelNotAvailable, match="not a model directory"):
        base_models.resolve_local_dir(str(tmp_path / "nowhere"), tmp_path)
