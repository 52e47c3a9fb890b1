"""4-bit weights in torch's own CPU kernel: the ``int4`` precision.

Why. Decoding one token on a CPU reads every weight once, so its speed is set by how
many bytes the matrix-vector products read and how well their kernel streams them.
bitsandbytes' NF4 kernel on the CPU is far slower per weight than torch's built-in
4-bit kernel (``aten._weight_int4pack_mm_for_cpu``, groupwise affine int4 with bf16
activations), and bf16 reads four times the bytes (`python -m bench.run decode`).

Which weights. Each row of a linear layer is cut into groups of 32 weights; each group
keeps 4-bit codes, a scale and a minimum (w = code * scale + minimum). That is exactly
the GGUF Q4_1 format the bundled SmolLM2 ships in: its quantiser gives every group the
codes 0 and 15, so the group's minimum and maximum recover the original scale and
minimum and re-quantising the converted weights gives back the very codes of the GGUF
file (only the scale and minimum are rounded to bf16). NF4, in contrast, re-quantises
those already-quantised weights onto another grid. Other models get plain round-to-
nearest int4. The output layer (tied to the embeddings, 8-bit in the GGUF) stays bf16:
it decides every token, and 4 bits there cost more than they save.

The modules stay ``torch.nn.Linear`` subclasses, so PEFT wraps them like any linear
layer and LoRA adapters (trained on the NF4 base) load and hot-swap unchanged.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

GROUP = 32  # weights per scale/minimum pair: GGUF Q4_1's block size
_SKIP = ("lm_head",)  # kept in bf16, see the module docstring
# The kernel is a matrix-vector product per input row, so its cost grows with every row
# while a dense bf16 matmul shares each weight across rows: from this many rows on (a
# prompt's prefill) unpacking the weight to bf16 and one dense matmul is faster. Decode
# steps, one row per running answer, stay below it.
DENSE_ROWS = 128


def available() -> bool:
    """Whether this torch has the CPU int4 kernel (torch >= 2.5)."""
    return hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu") and hasattr(
        torch.ops.aten, "_convert_weight_to_int4pack_for_cpu")


def quantize(weight: torch.Tensor, group: int = GROUP) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes [N, K] int32 in 0..15, scales_and_zeros [K/group, N, 2] float32) with
    w ~= (code - 8) * scale + zero, the kernel's convention (zero = minimum + 8 * scale)."""
    rows, cols = weight.shape
    grouped = weight.float().reshape(rows, cols // group, group)
    low = grouped.amin(-1, keepdim=True)
    high = grouped.amax(-1, keepdim=True)
    scale = ((high - low) / 15).clamp(min=torch.finfo(torch.float32).tiny)
    codes = ((grouped - low) / scale).round().clamp(0, 15).to(torch.int32).reshape(rows, cols)
    zero = low + 8 * scale
    pairs = torch.cat([scale, zero], dim=-1)  # [N, K/group, 2]
    return codes, pairs.transpose(0, 1).contiguous()


class Int4Linear(torch.nn.Linear):
    """A linear layer whose weight is packed 4-bit codes for torch's CPU int4 kernel.

    ``weight`` holds the packed codes (an integer tensor, so PEFT leaves adapter weights
    in their own dtype, as it does over bitsandbytes' packed weights).
    """

    # buffers, registered in __init__ (declared so type checkers see tensors, not Modules)
    scales_and_zeros: torch.Tensor
    codes: torch.Tensor

    def __init__(self, linear: torch.nn.Linear, group: int = GROUP) -> None:
        torch.nn.Module.__init__(self)
        self.in_features, self.out_features, self.group = (
            linear.in_features, linear.out_features, group)
        codes, pairs = quantize(linear.weight.detach(), group)
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1)
        self.weight = torch.nn.Parameter(packed, requires_grad=False)
        self.register_buffer("scales_and_zeros", pairs.to(torch.bfloat16))
        # The same codes two to a byte in plain order, for ``dense`` (the kernel's own
        # packing is blocked and undocumented).
        self.register_buffer("codes", (codes[:, 0::2] | (codes[:, 1::2] << 4)).to(torch.uint8))
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        if flat.dtype != torch.bfloat16:
            flat = flat.to(torch.bfloat16)
        if flat.shape[0] >= DENSE_ROWS:  # a prompt: see DENSE_ROWS
            out = torch.nn.functional.linear(flat, self.dense())
        else:
            out = torch.ops.aten._weight_int4pack_mm_for_cpu(
                flat.contiguous(), self.weight, self.group, self.scales_and_zeros)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def dense(self) -> torch.Tensor:
        """The bf16 weight these codes stand for, [out_features, in_features]."""
        rows, cols = self.out_features, self.in_features
        codes = torch.stack([self.codes & 15, self.codes >> 4], dim=-1).reshape(
            rows, cols // self.group, self.group)
        scale, zero = self.scales_and_zeros.float().transpose(0, 1).unbind(-1)  # [N, K/group]
        weight = (codes.float() - 8) * scale[..., None] + zero[..., None]
        return weight.reshape(rows, cols).to(torch.bfloat16)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"int4 groups of {self.group}")


def convert(model: torch.nn.Module, group: int = GROUP) -> int:
    """Replace the model's linear layers (not the output layer) by ``Int4Linear``, in place;
    how many. Layers whose input size is not a multiple of ``group`` stay as they are."""
    targets = [(name, module) for name, module in model.named_modules()
               if type(module) is torch.nn.Linear and not name.endswith(_SKIP)
               and module.in_features % group == 0]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int4Linear(module, group))
    log.info("int4: %d linear layers packed (groups of %d)", len(targets), group)
    return len(targets)
