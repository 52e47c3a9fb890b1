"""The int4 precision: GGUF Q4_1 codes survive re-quantisation exactly, packed layers
compute what their dequantised weights do, and LoRA adapters still load over them."""

from __future__ import annotations

import pytest
import torch

from assistant.models import int4
from assistant.models.adapters import AdapterManager
from assistant.models.base_models import LoadedModel
from assistant.models.generation import Generator, SamplingParams

pytestmark = pytest.mark.skipif(not int4.available(), reason="torch lacks the CPU int4 kernel")
GREEDY = SamplingParams(max_new_tokens=8, repetition_penalty=1.0, ignore_eos=True)


def q4_1_weight(rows: int = 64, cols: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights as a Q4_1 file holds them: per 32-group codes 0..15 (both ends used),
    a scale and a minimum; returned with their codes."""
    torch.manual_seed(0)
    codes = torch.randint(0, 16, (rows, cols // 32, 32))
    codes[..., 0], codes[..., 1] = 0, 15  # the quantiser maps each group's min and max there
    scale = torch.rand(rows, cols // 32, 1) * 0.01 + 0.001
    low = torch.randn(rows, cols // 32, 1) * 0.05
    return (codes * scale + low).reshape(rows, cols), codes.reshape(rows, cols)


def test_requantising_q4_1_weights_gives_back_their_codes():
    weight, codes = q4_1_weight()
    found, pairs = int4.quantize(weight)
    assert torch.equal(found, codes.to(torch.int32))
    scale, zero = pairs[..., 0].t(), pairs[..., 1].t()  # [rows, groups]
    rebuilt = ((found.reshape(64, 3, 32) - 8) * scale[..., None] + zero[..., None]).reshape(64, 96)
    assert torch.allclose(rebuilt, weight, atol=1e-6)


def test_a_packed_layer_computes_what_its_weights_do():
    weight, _ = q4_1_weight()
    linear = torch.nn.Linear(96, 64, bias=True)
    with torch.no_grad():
        linear.weight.copy_(weight)
    packed = int4.Int4Linear(linear)
    x = torch.randn(3, 5, 96, dtype=torch.bfloat16)
    expected = torch.nn.functional.linear(x.float(), weight, linear.bias.detach())
    got = packed(x)
    assert got.shape == (3, 5, 64) and got.dtype == torch.bfloat16
    assert torch.allclose(got.float(), expected, atol=0.02, rtol=0.02)
    prompt = torch.randn(int4.DENSE_ROWS, 96, dtype=torch.bfloat16)  # the dense path
    assert torch.allclose(packed(prompt).float(),
                          torch.nn.functional.linear(prompt.float(), weight, linear.bias.detach()),
                          atol=0.05, rtol=0.02)
    unpacked = packed.dense().float()  # exactly what the kernel multiplies by
    assert torch.allclose(unpacked, weight, atol=2e-3)


@pytest.fixture
def int4_base(tiny_base_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_base_dir, dtype=torch.bfloat16).eval()
    assert int4.convert(model) == 2 * 7  # every linear of both layers; not the output layer
    assert type(model.lm_head) is torch.nn.Linear
    return LoadedModel("tiny-llama", model, AutoTokenizer.from_pretrained(tiny_base_dir),
                       "int4", "cpu", model.get_memory_footprint(), 0.0, str(tiny_base_dir))


def test_adapters_load_over_packed_layers_and_batched_answers_equal_serial(
        adapters_dir, int4_base):
    manager = AdapterManager(adapters_dir, int4_base)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    alone = Generator(manager, max_batch=1)
    serial = {a: alone.generate(messages, GREEDY, adapter=a).text for a in (None, "alpha", "beta")}
    wrapped = [m.base_layer for m in manager.peft_model().modules() if hasattr(m, "lora_A")]
    assert wrapped and all(isinstance(layer, int4.Int4Linear) for layer in wrapped)
    ids = torch.tensor([alone.encode_chat(messages)])
    with torch.inference_mode():
        logits = {a: manager.peft_model()(input_ids=ids, adapter_names=[a]).logits
                  for a in ("__base__", _key("alpha"))}
    assert not torch.equal(*logits.values())  # the adapter really changes the output
    batched = Generator(manager, max_batch=4)
    streams = {a: batched.stream(messages, GREEDY, adapter=a) for a in (None, "alpha", "beta")}
    assert {a: s.wait().text for a, s in streams.items()} == serial


def _key(name: str) -> str:
    from assistant.models.adapters import peft_key

    return peft_key(name)
