"""Which engine writes the answers, and why: ``ASSISTANT_BACKEND=auto`` (the default) made
concrete for this host.

llama.cpp is the default serving engine: on these CPUs it decodes the GGUF's own 4-bit
weights several times faster than the torch generator (``python -m bench.run decode``).
It answers when it can: the base model has a GGUF, llama-cpp-python imports (it compiles
from source: ``make llamacpp``; setup builds it once), and its logits agree with the stored
reference on this host (llamacpp_accuracy.py). Otherwise the local torch generator answers,
and the reason is logged and shown by ``assistant models``. An explicit
``ASSISTANT_BACKEND=llamacpp`` never falls back (it fails with the reason), and ``local``
or ``openai`` are taken as asked. Training needs gradients and stays on torch whatever
answers, on the weights that will serve the adapter (``training_precision``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from assistant.errors import StrataError

if TYPE_CHECKING:
    from assistant.settings import Settings

log = logging.getLogger(__name__)
Engine = Literal["llamacpp", "local", "openai"]


@dataclass(frozen=True)
class EngineChoice:
    """The engine that answers, what was asked for, and why this one."""

    engine: Engine
    requested: str  # ASSISTANT_BACKEND as set: auto, llamacpp, local or openai
    reason: str

    @property
    def fallback(self) -> bool:
        """llama.cpp was the default and could not answer: the local generator does."""
        return self.requested == "auto" and self.engine == "local"

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "requested": self.requested, "reason": self.reason,
                "fallback": self.fallback}

    def line(self) -> str:
        """One sentence for the log and ``assistant models``."""
        if self.fallback:
            return f"answers come from the local generator (fallback: {self.reason})"
        return f"answers come from {self.engine} ({self.reason})"


def unavailable(settings: Settings, base_name: str | None = None) -> str | None:
    """Why llama.cpp cannot answer for these settings, before opening anything (None: it
    can, pending its logits check). ``base_name``: a base model handed in ready-made
    (tests, benchmarks), which llama.cpp's GGUF must be."""
    from assistant.models.base_models import REGISTRY

    spec = REGISTRY.get(settings.base_model)
    if spec is None or spec.locate is None:
        with_gguf = ", ".join(n for n, s in REGISTRY.items() if s.locate)
        return (f"base model {settings.base_model!r} has no GGUF for llama.cpp "
                f"(GGUF models: {with_gguf})")
    if base_name is not None and base_name != spec.name:
        return f"the loaded base model {base_name!r} is not {spec.name!r}, whose GGUF it reads"
    try:
        from assistant.backends.llamacpp import import_llama_cpp

        import_llama_cpp()
    except StrataError as exc:
        return str(exc)
    return None


def choose(settings: Settings, base_name: str | None = None) -> EngineChoice:
    """The engine for these settings, from what is installed (the logits check comes when
    llama.cpp opens the model: ``fall_back`` then gives the local choice)."""
    requested = settings.backend
    if requested == "openai":
        return EngineChoice("openai", requested, f"the server at {settings.backend_url}")
    if requested == "local":
        return EngineChoice("local", requested, "ASSISTANT_BACKEND=local")
    if requested == "llamacpp":
        return EngineChoice("llamacpp", requested, "ASSISTANT_BACKEND=llamacpp")
    why = unavailable(settings, base_name)
    if why is not None:
        return EngineChoice("local", requested, why)
    return EngineChoice("llamacpp", requested, "the default engine")


def fall_back(choice: EngineChoice, error: Exception) -> EngineChoice:
    """After llama.cpp refused to open (its logits check, a load failure): the local
    generator, unless llama.cpp was asked for by name."""
    if choice.requested != "auto":
        raise error
    return EngineChoice("local", choice.requested, f"llama.cpp did not open: {error}")


def check(settings: Settings) -> EngineChoice:
    """The engine that would answer, with llama.cpp's logits check run here (opens the GGUF
    in llama.cpp, about a second; loads no torch model): for ``assistant models``."""
    choice = choose(settings)
    if choice.engine != "llamacpp":
        return choice
    from assistant.backends.llamacpp import gguf_for, import_llama_cpp
    from assistant.backends.llamacpp_accuracy import open_checked

    try:
        llm, accuracy = open_checked(import_llama_cpp(), gguf_for(settings), n_ctx=256,
                                     n_threads=1, n_threads_batch=1, verbose=False)
        llm.close()
    except Exception as exc:  # noqa: BLE001 - any failure to open is the fallback's reason
        return fall_back(choice, exc)
    checked = ("logits check passed" if accuracy.correlation is not None
               else "no logits reference for this GGUF: unchecked")
    return EngineChoice("llamacpp", choice.requested, f"{choice.reason}; {checked}")


def local_quant(settings: Settings) -> str:
    """The precision the torch base loads in. ``ASSISTANT_QUANT`` when it is set, and NF4
    (QLoRA's 4-bit) for ``ASSISTANT_BACKEND=local``. Under the default engine choice
    (``auto``) with a base that has a GGUF, the GGUF's own 4-bit values in fp32: the
    weights llama.cpp computes with, so an adapter trained for the default engine answers
    as it learnt when the local generator answers instead (the fallback). Measured with the
    demo adapter, adapter mode recalled 0.52 on them against 0.41 on NF4 and 0.56 on
    llama.cpp (docs/evaluation.md, ``adapter-precision``); they decode slower than NF4
    (docs/benchmarks.md, the models table)."""
    if settings.backend != "auto" or "quant" in settings.model_fields_set:
        return settings.quant
    from assistant.models.base_models import REGISTRY

    spec = REGISTRY.get(settings.base_model)
    return "fp32" if spec is not None and spec.locate is not None else settings.quant


def training_precision(settings: Settings, choice: EngineChoice) -> str:
    """The precision torch trains an adapter on: the weights that will serve it. The local
    generator serves ``local_quant`` (NF4 for ``ASSISTANT_BACKEND=local``: QLoRA; the
    GGUF's values in fp32 when it stands in for llama.cpp). llama.cpp computes with the
    GGUF's 4-bit weights, whose fp32 dequantisation is the converted base torch loads, so an
    adapter trained on fp32 serves there as it was trained; a generation server (vLLM,
    deploy/vllm.args) loads that converted base in bf16, closer to fp32 than to NF4. One
    trained on NF4 instead recalled 0.64 of the demo's facts on the local engine and 0.50 on
    llama.cpp: it had learnt NF4's rounding (research/results/nf4_trained_adapter/)."""
    return local_quant(settings) if choice.engine == "local" else "fp32"
