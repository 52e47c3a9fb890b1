"""Tiny random models built inside the tests: no downloads, seconds to create.

A 2-layer Llama with a byte-level BPE tokenizer trained on a few sentences, and LoRA
adapters saved with ``init_lora_weights=False`` so that each one really changes outputs.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TINY_BASE = "tiny-llama"
CORPUS = [
    "What is the capital of France? Paris is the capital of France.",
    "The water cooperative charges a connection fee of 148.50 pounds.",
    "Hello world, this is a tiny tokenizer for tests of adapters and generation.",
] * 20


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<pad>"]
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|end|>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_llama(tokenizer, seed: int = 0, hidden: int = 32):
    """hidden=64 or more for NF4 tests: bitsandbytes' CPU kernel packs 64-wide blocks."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def save_tiny_adapter(
    base_dir: Path, adapters_dir: Path, name: str, seed: int,
    targets=("q_proj", "v_proj"), base_name: str = TINY_BASE, rank: int = 4,
) -> Path:
    """Train-free LoRA adapter with random (non-zero) weights, saved in PEFT format."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets),
                        init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    out = adapters_dir / name
    peft_model.save_pretrained(out)
    # Record the registry name of the base, as `assistant train` does.
    import json

    cfg_file = out / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["base_model_name_or_path"] = base_name
    cfg_file.write_text(json.dumps(cfg, indent=2))
    return out


def tiny_loaded(base_dir: Path):
    """A LoadedModel over a saved tiny Llama, as load_base_model would return it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from assistant.models.base_models import LoadedModel

    model = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    model.requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    return LoadedModel(
        name=TINY_BASE, model=model, tokenizer=tokenizer, quant="fp32", device="cpu",
        footprint_bytes=int(model.get_memory_footprint()), load_seconds=0.0, source=str(base_dir),
    )


def tiny_services(tmp_path, tiny_base, adapters_dir, document: str, **settings):
    """Services over a loaded tiny model and the hashing embedder, one document ingested
    (domain "water") as fees.md: the pipeline, ledger and store are all real."""
    from assistant.services import Services
    from assistant.settings import Settings
    from tests.retrieval_helpers import HashEmbedder

    # the tiny model stands in for the bundled reader: its answer settings (profile)
    settings = {"profile": "small-reader", **settings}
    services = Services(Settings(data_dir=tmp_path / "data", adapters_dir=adapters_dir,
                                 base_model=tiny_base.name, **settings),
                        base=tiny_base, embedder=HashEmbedder())
    doc = tmp_path / "fees.md"
    doc.write_text(document)
    assert services.ingestor.ingest([doc], domain="water")[0].ok
    return services
