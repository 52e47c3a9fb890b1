"""Adapters on an NF4 (4-bit) base after it has already answered.

bitsandbytes repacks 4-bit weights on the first CPU forward pass, and its own inverse
scrambles the block scales; PEFT calls that inverse when it loads or deletes an adapter.
These tests load adapters into a base that has run, as the app does, and require the bare
base to be exactly what it was. hidden=128 gives two 64-wide scale blocks per row: with
only one, the scrambling is invisible.
"""

from __future__ import annotations

import pytest
import torch

from assistant.models.adapters import AdapterManager, unpack_cpu_4bit
from assistant.models.base_models import LoadedModel, nf4_kwargs
from tests.tiny_models import TINY_BASE, save_tiny_adapter, tiny_llama, tiny_tokenizer

PROMPT = torch.tensor([[5, 17, 42, 99, 7, 3, 11, 64]])


@pytest.fixture(scope="module")
def nf4_setup(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("nf4")
    tokenizer = tiny_tokenizer()
    tiny_llama(tokenizer, hidden=128).save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    for seed, name in [(1, "alpha"), (2, "beta")]:
        save_tiny_adapter(root / "base", root / "adapters", name, seed=seed)
    model = AutoModelForCausalLM.from_pretrained(root / "base", **nf4_kwargs("cpu")).eval()
    base = LoadedModel(TINY_BASE, model, tokenizer, "nf4", "cpu", 0, 0.0, str(root / "base"))
    return base, root / "adapters"


def logits(manager: AdapterManager, name: str | None) -> torch.Tensor:
    with manager.using(name) as model, torch.inference_mode():
        return model(input_ids=PROMPT).logits[0, -1].float().clone()


def test_base_is_unchanged_by_loading_and_evicting_adapters_after_it_ran(nf4_setup):
    base, adapters_dir = nf4_setup
    manager = AdapterManager(adapters_dir, base, max_resident=1)
    bare = logits(manager, None)  # the first pass repacks the weights (on AVX512-BF16 CPUs)
    alpha = logits(manager, "alpha")
    assert not torch.allclose(alpha, bare, atol=1e-3)
    assert torch.equal(logits(manager, None), bare)
    logits(manager, "beta")  # evicts alpha: PEFT deletes an adapter from a repacked model
    assert torch.equal(logits(manager, None), bare)
    assert torch.allclose(logits(manager, "alpha"), alpha, atol=1e-2)


def test_unpacking_round_trips_exactly(nf4_setup):
    base, _ = nf4_setup
    with torch.inference_mode():
        before = base.model(input_ids=PROMPT).logits[0, -1].float().clone()
    unpack_cpu_4bit(base.model)
    with torch.inference_mode():
        after = base.model(input_ids=PROMPT).logits[0, -1].float().clone()
    assert torch.equal(before, after)
