"""The PEFT -> llama.cpp LoRA conversion: names, the q/k row order, and what it refuses.

Tiny numpy arrays stand in for an adapter; the llama.cpp integration test checks a real
converted adapter against the PEFT one on the bundled model.
"""

from __future__ import annotations

import numpy as np
import pytest

from assistant.backends.lora_gguf import LoraConversionError, lora_tensors, permute_rows

SHAPE = {"architecture": "llama", "heads": 4, "kv_heads": 2, "blocks": 2}


def llama_cpp_permute(weights, n_head, n_head_kv):
    """llama.cpp's convert_hf_to_gguf.py LlamaModel.permute, as it is written there."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def test_rows_are_permuted_as_llama_cpp_stores_query_and_key():
    weights = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
    assert np.array_equal(permute_rows(weights, 4), llama_cpp_permute(weights, 4, 4))
    assert np.array_equal(permute_rows(weights, 2), llama_cpp_permute(weights, 4, 2))
    assert not np.array_equal(permute_rows(weights, 4), weights)


def test_peft_names_map_to_llama_cpp_names_and_only_q_and_k_b_are_permuted():
    a = np.ones((2, 8), dtype=np.float32)
    b = np.arange(16 * 2, dtype=np.float32).reshape(16, 2)
    prefix = "base_model.model.model.layers.1"
    out = lora_tensors({f"{prefix}.self_attn.q_proj.lora_A.weight": a,
                        f"{prefix}.self_attn.q_proj.lora_B.weight": b,
                        f"{prefix}.self_attn.k_proj.lora_B.weight": b,
                        f"{prefix}.mlp.down_proj.lora_B.weight": b}, SHAPE)
    assert set(out) == {"blk.1.attn_q.weight.lora_a", "blk.1.attn_q.weight.lora_b",
                        "blk.1.attn_k.weight.lora_b", "blk.1.ffn_down.weight.lora_b"}
    assert np.array_equal(out["blk.1.attn_q.weight.lora_a"], a)  # A is never permuted
    assert np.array_equal(out["blk.1.attn_q.weight.lora_b"], permute_rows(b, 4))
    assert np.array_equal(out["blk.1.attn_k.weight.lora_b"], permute_rows(b, 2))  # kv heads
    assert np.array_equal(out["blk.1.ffn_down.weight.lora_b"], b)


def test_a_tensor_llama_cpp_has_no_place_for_is_refused():
    with pytest.raises(LoraConversionError, match="lm_head"):
        lora_tensors({"base_model.model.lm_head.lora_A.weight": np.ones((2, 2))}, SHAPE)
