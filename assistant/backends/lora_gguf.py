"""A PEFT LoRA adapter folder as a llama.cpp LoRA file (GGUF), for the llama.cpp backend.

Why: llama.cpp applies LoRA adapters per request without touching the base weights, but
only from its own GGUF format. This writes the same A and B matrices under llama.cpp's
tensor names, with the adapter's alpha (llama.cpp scales by alpha / rank, as PEFT does).

One detail decides whether the result is right: llama.cpp's converter stores a llama
model's query and key projections with their rows permuted (the rotary halves
interleaved), so the B matrix of ``q_proj`` and ``k_proj`` gets the same permutation of
its rows. A unit test checks the written tensors against the folder's; the llama.cpp
test checks that the converted adapter moves llama.cpp's next-token logits the way the
PEFT adapter moves the local model's.

The converted file is cached beside nothing it could overwrite: in the cache folder,
named by the weights' SHA-256, so a retrained adapter is converted again.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import StrataError

if TYPE_CHECKING:
    import numpy as np

# PEFT module name -> llama.cpp tensor name inside block N
MODULES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
           "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
SUPPORTED_ARCHITECTURES = ("llama",)
_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")


class LoraConversionError(StrataError):
    """An adapter llama.cpp cannot use (unknown layers, another architecture)."""


def base_shape(gguf_path: Path) -> dict[str, Any]:
    """Architecture, head counts and block count of a GGUF base model (read, not loaded)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_path))

    def field(key: str) -> Any:
        found = reader.fields.get(key)
        if found is None:
            return None
        value = found.parts[found.data[0]]
        return bytes(value).decode() if found.types and found.types[0].name == "STRING" \
            else value.tolist()[0]

    arch = field("general.architecture")
    return {"architecture": arch, "heads": field(f"{arch}.attention.head_count"),
            "kv_heads": field(f"{arch}.attention.head_count_kv"),
            "blocks": field(f"{arch}.block_count")}


def permute_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's row order for a llama query/key projection (its converter's ``permute``)."""
    rows = weight.shape[0]
    return (weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def lora_tensors(weights: dict[str, np.ndarray], shape: dict[str, Any]
                 ) -> dict[str, np.ndarray]:
    """PEFT's ``lora_A`` / ``lora_B`` arrays under llama.cpp's names, B permuted for q and k."""
    out = {}
    for key, array in weights.items():
        match = _KEY.search(key)
        if not match or match.group(2) not in MODULES:
            raise LoraConversionError(
                f"the adapter has a tensor llama.cpp's LoRA format has no place for: {key} "
                f"(it takes {', '.join(MODULES)})")
        block, module, side = int(match.group(1)), match.group(2), match.group(3)
        if side == "B" and module in ("q_proj", "k_proj"):
            heads = shape["heads"] if module == "q_proj" else shape["kv_heads"]
            array = permute_rows(array, heads)
        out[f"blk.{block}.{MODULES[module]}.weight.lora_{side.lower()}"] = array
    return out


def convert(adapter_dir: Path, gguf_base: Path, cache_dir: Path) -> Path:
    """The adapter as a llama.cpp LoRA GGUF in ``cache_dir`` (converted once per weights)."""
    import numpy as np
    from gguf import GGUFWriter
    from safetensors.numpy import load_file

    weights_file = adapter_dir / "adapter_model.safetensors"
    digest = hashlib.sha256(weights_file.read_bytes()).hexdigest()[:16]
    target = cache_dir / "llama-cpp-lora" / f"{adapter_dir.name}-{digest}.gguf"
    if target.is_file():
        return target
    shape = base_shape(gguf_base)
    if shape["architecture"] not in SUPPORTED_ARCHITECTURES:
        raise LoraConversionError(
            f"the llama.cpp backend converts adapters for {', '.join(SUPPORTED_ARCHITECTURES)} "
            f"models; this base is {shape['architecture']!r} (use backend=local)")
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("use_dora") or config.get("use_rslora") or config.get("modules_to_save"):
        raise LoraConversionError(
            "llama.cpp takes plain LoRA only (no DoRA, rsLoRA or saved modules); "
            "use backend=local for this adapter")
    tensors = lora_tensors({k: v.astype(np.float32) for k, v in load_file(weights_file).items()},
                           shape)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    writer = GGUFWriter(str(partial), shape["architecture"])
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(config["lora_alpha"]))
    for name, array in sorted(tensors.items()):
        writer.add_tensor(name, np.ascontiguousarray(array.astype(np.float16)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(target)
    return target
