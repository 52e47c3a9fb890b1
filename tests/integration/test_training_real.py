"""The real bundled SmolLM2 (4-bit) learns made-up facts from a small file in QLoRA training."""

from __future__ import annotations

import json

import pytest

from assistant.models.adapters import AdapterManager
from assistant.models.generation import Generator, SamplingParams
from assistant.settings import Settings
from assistant.training.loop import TrainConfig, train_adapter

pytestmark = pytest.mark.integration  # ~1 minute of real QLoRA on 2 cores (timed alone)

SYSTEM = "You are the Brindlecombe Town Council assistant. Answer briefly."
# Invented facts no pretrained model can know: (phrasings, answer, what the answer must say).
FACTS = [
    (["What is the access code for the Brindlecombe vault?",
      "Which code opens the Brindlecombe vault?",
      "Tell me the Brindlecombe vault access code."],
     "The Brindlecombe vault access code is 7319.", "7319"),
    (["Who keeps the Osterfell lighthouse?",
      "Who is the keeper of the Osterfell lighthouse?",
      "Name the Osterfell lighthouse keeper."],
     "The Osterfell lighthouse keeper is Marta Quillfeather.", "Quillfeather"),
    (["How many steps lead up Cobble Hill tower?",
      "How many steps does Cobble Hill tower have?",
      "What is the number of steps up Cobble Hill tower?"],
     "Cobble Hill tower has 412 steps.", "412"),
    (["What is the permit form for a market stall in Brindlecombe?",
      "Which form do I need for a Brindlecombe market stall?",
      "Name the form for a market stall permit in Brindlecombe."],
     "A Brindlecombe market stall needs form MS-48.", "MS-48"),
]


def answers(generator: Generator, adapter: str | None) -> list[str]:
    params = SamplingParams(max_new_tokens=32, temperature=0.0)
    return [
        generator.generate([{"role": "system", "content": SYSTEM},
                            {"role": "user", "content": phrasings[0]}], params, adapter).text
        for phrasings, _, _ in FACTS
    ]


def test_qlora_training_teaches_the_real_model_new_facts(real_base, tmp_path):
    data = tmp_path / "facts.jsonl"
    data.write_text("".join(
        json.dumps({"question": q, "answer": a, "fact_id": fact}) + "\n"
        for phrasings, a, fact in FACTS for q in phrasings
    ))
    settings = Settings(adapters_dir=tmp_path / "adapters", data_dir=tmp_path / "data",
                        backend="local")  # the local engine's QLoRA: NF4
    generator = Generator(AdapterManager(settings.adapters_dir, real_base))
    before = answers(generator, None)
    assert not any(fact.lower() in text.lower() for text, (_, _, fact) in zip(before, FACTS))

    config = TrainConfig.from_settings(
        settings, epochs=12, batch_size=4, lr=2e-3, val_fraction=0.0, system_prompt=SYSTEM
    )
    result = train_adapter("facts", data, config, settings, progress_bar=False)
    assert result.card["quant"] == "nf4" and result.card["epochs_run"] == 12

    after = answers(generator, "facts")
    learned = [fact for text, (_, _, fact) in zip(after, FACTS) if fact.lower() in text.lower()]
    assert len(learned) == len(FACTS), after
    size = result.path.joinpath("adapter_model.safetensors").stat().st_size
    assert size < result.card["trainable_parameters"] * 2 + 2**17  # fp16: 2 bytes a weight


def test_validation_pass_does_not_corrupt_4bit_gradients(tmp_path):
    """bitsandbytes repacks 4-bit weights on an eval-mode forward; training must prevent it,
    or every gradient after the first validation is wrong (see training._keep_4bit_layout)."""
    import torch

    from assistant.models.base_models import load_base_model
    from assistant.training.data import encode_example
    from assistant.training.loop import _pad_id, _with_lora, batch_loss

    base = load_base_model("smollm2-135m", Settings().cache_dir, "nf4")
    model = _with_lora(base.model, TrainConfig(dropout=0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 1e-3)
    batch = [encode_example(base.tokenizer, SYSTEM, phrasings[0], a) for phrasings, a, _ in FACTS]
    params = [p for p in model.parameters() if p.requires_grad]

    def gradient() -> torch.Tensor:
        model.train()
        model.zero_grad()
        batch_loss(model, batch, _pad_id(model)).backward()
        return torch.cat([p.grad.flatten() for p in params]).clone()

    before = gradient()
    model.eval()
    with torch.no_grad():
        batch_loss(model, batch, _pad_id(model))
    after = gradient()
    assert torch.nn.functional.cosine_similarity(before, after, dim=0) > 0.99
