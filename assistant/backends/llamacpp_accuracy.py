"""llama.cpp is checked against a stored reference before it answers anyone.

Why: llama.cpp repacks Q4_0/Q4_1 weights into "extra buffer types" for the CPU features it
finds, and on CPUs with AMX that path computes wrong logits (upstream: llama.cpp PR #16315,
"The AMX backend produces garbage with Q4_0 and Q4_1"); measured on the bundled GGUF, the
last-token logits correlated 0.893 with the fp32 model, against 0.9993 without repacking.
Hosts of one kind differ in CPU features, so the choice is made on the host, at start: the
GGUF is opened as llama.cpp would (fastest), one short prompt is evaluated, and its logits
are compared with the fp32 model's, stored in ``reference/<gguf>.npz`` by ``python -m
assistant.backends.llamacpp_accuracy --write``. On disagreement the GGUF is opened again
without the extra buffers; if that disagrees too, llama.cpp is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import StrataError

log = logging.getLogger(__name__)
REFERENCE_DIR = Path(__file__).parent / "reference"
MIN_CORRELATION = 0.99  # right paths measured 0.999; the AMX-repacked one 0.89
PROMPT = [{"role": "user", "content": "When was the water cooperative founded?"}]


@dataclass(frozen=True)
class Accuracy:
    """How the engine was opened and how far its logits agree with the reference."""

    extra_buffers: bool
    correlation: float | None  # None: no reference for this GGUF (not checked)
    tried: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"extra_buffers": self.extra_buffers, "logits_correlation": self.correlation,
                "correlations_tried": list(self.tried)}


def reference_path(gguf: Path) -> Path:
    return REFERENCE_DIR / f"{gguf.stem}.npz"


@contextlib.contextmanager
def without_extra_buffers(llama_cpp: Any) -> Iterator[None]:
    """Models opened inside keep their weights as stored (no repacking for AMX or AVX):
    llama-cpp-python builds its model parameters from ``llama_model_default_params``."""
    native = llama_cpp.llama_cpp
    original = native.llama_model_default_params

    def plain() -> Any:
        params = original()
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False
        return params

    native.llama_model_default_params = plain
    try:
        yield
    finally:
        native.llama_model_default_params = original


def correlation(llm: Any, ids: list[int], reference: Any) -> float:
    """Pearson correlation of the last prompt token's logits with the reference's."""
    import numpy as np

    llm.n_tokens = 0
    llm.eval(ids)
    logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()
    llm.n_tokens = 0  # the answers start from an empty context
    return float(np.corrcoef(logits.astype(np.float64),
                             reference.astype(np.float64))[0, 1])


def open_checked(llama_cpp: Any, gguf: Path, **kwargs: Any) -> tuple[Any, Accuracy]:
    """A ``llama_cpp.Llama`` whose logits agree with the reference on this host."""
    import numpy as np

    ref = reference_path(gguf)
    if not ref.is_file():
        log.warning("llama.cpp: no logits reference for %s; opened without extra buffers, "
                    "unchecked", gguf.name)
        with without_extra_buffers(llama_cpp):
            return llama_cpp.Llama(model_path=str(gguf), **kwargs), Accuracy(False, None)
    stored = np.load(ref)
    ids, reference = [int(i) for i in stored["ids"]], stored["logits"]
    tried: list[float] = []
    for extra in (True, False):
        with contextlib.nullcontext() if extra else without_extra_buffers(llama_cpp):
            llm = llama_cpp.Llama(model_path=str(gguf), **kwargs)
        r = correlation(llm, ids, reference)
        tried.append(round(r, 4))
        if r >= MIN_CORRELATION:
            if not extra:
                log.warning("llama.cpp: repacked weights disagree with the reference on this "
                            "CPU (r=%.3f); using the weights as stored (r=%.4f)", tried[0], r)
            return llm, Accuracy(extra, round(r, 4), tuple(tried))
        llm.close()
    raise StrataError(f"llama.cpp's logits disagree with the fp32 reference on this host "
                      f"(correlation {tried}, need {MIN_CORRELATION}); use the local backend")


def write_reference(model: str, out_dir: Path = REFERENCE_DIR) -> Path:
    """The fp32 model's last-token logits for ``PROMPT`` (dequantized from the same GGUF),
    float16, beside the prompt's token ids."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from assistant.models.base_models import REGISTRY, ensure_converted
    from assistant.settings import get_settings

    spec = REGISTRY[model]
    if spec.locate is None:
        raise StrataError(f"{model} has no GGUF")
    folder = ensure_converted(spec, get_settings().cache_dir)
    tokenizer: Any = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer.apply_chat_template(
        PROMPT, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    fp32 = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        logits = fp32(torch.tensor([ids])).logits[0, -1].numpy()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{spec.locate().stem}.npz"
    np.savez_compressed(path, ids=np.asarray(ids, dtype=np.int32),
                        logits=logits.astype(np.float16))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the fp32 logits reference that "
                                     "llama.cpp is checked against at start.")
    parser.add_argument("--write", metavar="MODEL", default="smollm2-135m",
                        help="registry model whose GGUF gets a reference (smollm2-135m)")
    args = parser.parse_args(argv)
    print(write_reference(args.write))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
