"""LoRA adapters hot-swapped on one resident base model.

The base is wrapped in a PeftModel once; adapters are loaded into it lazily, kept
resident up to a limit (least recently used goes first) and activated per request.
The base is never reloaded. One lock serialises every use of the model, because an
active adapter is model-wide state: two requests must never see each other's.
"""

from __future__ import annotations

import builtins
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import AdapterError
from assistant.models.adapter_folder import (
    CONFIG,
    WEIGHTS,
    Card,
    check_name,
    precision_mismatch,
    read_profile,
)

if TYPE_CHECKING:
    import torch

    from assistant.models.base_models import LoadedModel

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


@dataclass
class AdapterInfo:
    """What the adapters list shows: usable or not, and why."""

    name: str
    path: str
    ok: bool
    problem: str = ""
    resident: bool = False
    base_model: str = ""
    rank: int | None = None
    alpha: float | None = None
    target_modules: list[str] | None = None
    size_bytes: int = 0
    card: Card | None = None

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)  # a Card is no dataclass: asdict copies it as it is
        row["card"] = self.card.to_dict() if self.card is not None else None
        return row


def is_tool(folder: Path) -> bool:
    """Whether an adapter works for a command rather than for users: its card says it was
    trained with no router profile (``routable: false``, e.g. the question writer synth
    asks). Such an adapter loads by name but is in no list a user picks from (chat, arena,
    /v1/models, the evaluation's choice), so it never answers a user's question."""
    try:
        card = Card.read(folder)
    except AdapterError:
        return False  # listed, and refused with its reason where it is checked
    hyper = card.get("hyperparameters") if card else None
    return isinstance(hyper, dict) and hyper.get("routable") is False


class AdapterManager:
    """Discovers, validates, loads, evicts and activates adapters; owns the model lock."""

    def __init__(self, adapters_dir: Path, base: LoadedModel, max_resident: int = 4) -> None:
        self.dir = Path(adapters_dir)
        self.base = base
        self.max_resident = max(1, max_resident)
        self.lock = threading.Lock()
        self._peft: Any = None  # the PeftModel wrapping base.model, once an adapter is loaded
        self._resident: OrderedDict[str, tuple[float, float]] = OrderedDict()  # name -> mtimes
        self._warned: set[tuple[str, tuple[float, float]]] = set()  # precision warnings said
        self._active: str | None = None

    # --- discovery and validation ---------------------------------------------------
    def names(self) -> list[str]:
        """The adapters that answer users: folders on disk (re-read each time: new adapters
        appear without a restart), less tool adapters (``is_tool``)."""
        if not self.dir.is_dir():
            return []
        return sorted(p.name for p in self.dir.iterdir()
                      if p.is_dir() and (p / CONFIG).exists() and not is_tool(p))

    def path_of(self, name: str) -> Path:
        """The adapter's folder; refuses names that could escape the adapters directory."""
        check_name(name)
        root = self.dir.resolve()
        path = (root / name).resolve()
        if path.parent != root:
            raise AdapterError(f"adapter {name!r} points outside {self.dir} (refused)")
        if not path.is_dir():
            known = ", ".join(self.names()) or "none"
            raise AdapterError(f"unknown adapter {name!r} (available: {known})")
        return path

    def check(self, name: str) -> dict[str, Any]:
        """Validate an adapter on disk without loading it; returns its config.

        A malformed card.json or profile.json refuses the adapter too: it would be served
        without the system prompt it was trained with, or routed on a profile nobody wrote.
        """
        config, _ = self._inspect(name)
        return config

    def _inspect(self, name: str) -> tuple[dict[str, Any], Card | None]:
        path = self.path_of(name)
        pickles = sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            raise AdapterError(
                f"adapter {name!r} contains pickle weights ({', '.join(pickles)}), which can run "
                "code when loaded; only safetensors adapters are accepted"
            )
        config = _read_config(name, path)
        if not (path / WEIGHTS).is_file():
            raise AdapterError(f"adapter {name!r} has no {WEIGHTS}")
        _check_safetensors(name, path / WEIGHTS)
        trained_for = config.get("base_model_name_or_path") or ""
        if trained_for and not self._same_base(trained_for):
            raise AdapterError(
                f"adapter {name!r} was trained for base model {trained_for!r}, "
                f"but the loaded base is {self.base.name!r}"
            )
        read_profile(path)
        return config, Card.read(path)

    def _same_base(self, trained_for: str) -> bool:
        ours = {self.base.name, self.base.source, Path(self.base.source).name}
        return trained_for in ours or Path(trained_for).name in ours

    def info(self, name: str) -> AdapterInfo:
        path = self.dir / name
        try:
            config, card = self._inspect(name)
        except AdapterError as exc:
            return AdapterInfo(name, str(path), ok=False, problem=str(exc))
        except OSError as exc:  # an unreadable folder or file: this adapter only
            return AdapterInfo(name, str(path), ok=False,
                               problem=f"adapter {name!r} cannot be read ({exc.strerror or exc})")
        return AdapterInfo(
            name=name,
            path=str(path),
            ok=True,
            resident=name in self._resident,
            base_model=config.get("base_model_name_or_path") or "",
            rank=config.get("r"),
            alpha=config.get("lora_alpha"),
            target_modules=sorted(_as_list(config.get("target_modules"))),
            size_bytes=sum(f.stat().st_size for f in path.iterdir() if f.is_file()),
            card=card,
        )

    def list(self) -> list[AdapterInfo]:
        return [self.info(name) for name in self.names()]

    @property
    def resident(self) -> builtins.list[str]:  # ``list`` here is the method above
        return builtins.list(self._resident)

    # --- loading, eviction, activation ----------------------------------------------
    @contextmanager
    def using(self, name: str | None) -> Iterator[Any]:
        """Hold the model with ``name`` active (None: the bare base) for one request."""
        with self.lock:
            if name is None:
                if self._peft is None:
                    self.base.ensure_weights()  # a deferred base loads them now
                    yield self.base.model
                else:
                    with self._peft.disable_adapter():
                        yield self._peft
                return
            self._ensure_loaded(name)
            if self._active != name:
                self._peft.set_adapter(peft_key(name))
                self._active = name
            yield self._peft

    def load(self, name: str) -> float:
        """Make an adapter resident now; returns the seconds it took (0 if already)."""
        with self.lock:
            return self._ensure_loaded(name)

    def unload(self, name: str) -> bool:
        with self.lock:
            if name not in self._resident:
                return False
            self._evict(name)
            return True

    def ensure_resident(self, name: str, keep: Collection[str] = ()) -> float:
        """Load ``name`` if needed without evicting any adapter in ``keep`` (the rows of a
        running batch); the caller holds ``lock``."""
        return self._ensure_loaded(name, keep)

    def peft_model(self) -> torch.nn.Module | None:
        """The PEFT model holding every resident adapter, or None before the first load."""
        return self._peft

    def _ensure_loaded(self, name: str, keep: Collection[str] = ()) -> float:
        path = self.dir / name
        stamps = _mtimes(path) if path.is_dir() else None
        if name in self._resident and self._resident[name] == stamps:
            self._resident.move_to_end(name)
            return 0.0
        self.check(name)  # validates name, files and base before anything touches the model
        if name in self._resident:  # changed on disk (retrained): reload it
            self._evict(name)
        started = time.perf_counter()
        try:
            self._load_into_model(name, path)
        except Exception as exc:
            self._drop_partial(name)
            raise AdapterError(
                f"adapter {name!r} does not fit the loaded base model: {exc}") from exc
        self._resident[name] = _mtimes(path)
        spare = [n for n in self._resident if n != name and n not in keep]  # oldest first
        while len(self._resident) > self.max_resident and spare:
            self._evict(spare.pop(0))
        seconds = time.perf_counter() - started
        log.info("loaded adapter %s in %.0f ms", name, seconds * 1000)
        mismatch = precision_mismatch(name, Card.read(path), self.base.quant)
        if mismatch and (name, self._resident[name]) not in self._warned:
            self._warned.add((name, self._resident[name]))  # once per adapter version
            log.warning(mismatch)
        return seconds

    def _load_into_model(self, name: str, path: Path) -> None:
        from peft import PeftModel

        self.base.ensure_weights()  # a deferred base loads its torch weights now
        unpack_cpu_4bit(self.base.model)
        if self._peft is None:
            self._peft = PeftModel.from_pretrained(
                self.base.model, str(path), adapter_name=peft_key(name), is_trainable=False
            )
            self._peft.eval()
        else:
            self._peft.load_adapter(str(path), adapter_name=peft_key(name), is_trainable=False)
        self._active = None  # PEFT may switch the active adapter while loading

    def _drop_partial(self, name: str) -> None:
        if self._peft is not None and peft_key(name) in getattr(self._peft, "peft_config", {}):
            unpack_cpu_4bit(self._peft)
            self._peft.delete_adapter(peft_key(name))
        self._active = None

    def _evict(self, name: str) -> None:
        self._resident.pop(name, None)
        if self._peft is not None and peft_key(name) in self._peft.peft_config:
            unpack_cpu_4bit(self._peft)
            self._peft.delete_adapter(peft_key(name))
        self._active = None
        log.info("unloaded adapter %s", name)


def peft_key(name: str) -> str:
    """The adapter's name inside PEFT, which refuses '.' (its adapters are torch submodule
    names). Injective: '_' becomes '__' and '.' becomes '_d', so no two names collide."""
    return name.replace("_", "__").replace(".", "_d")


def unpack_cpu_4bit(model: torch.nn.Module) -> int:
    """Undo bitsandbytes' CPU repacking of NF4 weights, correctly, before PEFT touches them.

    On a CPU with AVX512-BF16, a 4-bit layer's first forward pass repacks its weight for a
    fast kernel (what makes nf4 decode faster than bf16: `python -m bench.run models`) and
    stores the block scales (absmax) transposed, as bf16. PEFT, loading or deleting an
    adapter, calls ``state_dict()``, whose bitsandbytes inverse (0.50) forgets to transpose
    absmax back when double quantisation is off; the next pass then scales every block wrongly and
    the model answers gibberish. Unpacking here, with the scales restored, leaves nothing
    for that inverse to do; the next forward pass repacks the weights again.
    """
    try:
        import torch
        from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse as inverse
    except ImportError:  # no bitsandbytes, or a version without CPU repacking
        return 0
    restored = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        state = getattr(weight, "quant_state", None)
        if weight is None or state is None or not getattr(state, "packing_format_for_cpu", False):
            continue
        nested = state.original_nested
        weight.data, weight.quant_state = inverse(weight.data, state)
        if not nested:  # the part bitsandbytes leaves undone: [K/blocksize, N] -> flat rows
            weight.quant_state.absmax = state.absmax.T.reshape(-1).to(torch.float32).contiguous()
        restored += 1
    return restored


def _read_config(name: str, path: Path) -> dict[str, Any]:
    config_file = path / CONFIG
    if not config_file.is_file():
        raise AdapterError(f"adapter {name!r} has no {CONFIG}")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterError(f"adapter {name!r}: {CONFIG} is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise AdapterError(f"adapter {name!r}: {CONFIG} must hold a JSON object")
    if config.get("peft_type") != "LORA":
        raise AdapterError(f"adapter {name!r}: peft_type must be 'LORA', "
                           f"not {config.get('peft_type')!r}")
    if not isinstance(config.get("r"), int) or config["r"] <= 0:
        raise AdapterError(f"adapter {name!r}: {CONFIG} needs a positive integer 'r'")
    if not _as_list(config.get("target_modules")):
        raise AdapterError(f"adapter {name!r}: {CONFIG} names no target_modules")
    return config


def _check_safetensors(name: str, weights: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            if not list(handle.keys()):
                raise AdapterError(f"adapter {name!r}: {WEIGHTS} holds no tensors")
    except AdapterError:
        raise
    except Exception as exc:
        raise AdapterError(f"adapter {name!r}: {WEIGHTS} is corrupt ({exc})") from exc


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return list(value or [])


def _mtimes(path: Path) -> tuple[float, float]:
    def mtime(p: Path) -> float:
        return p.stat().st_mtime if p.exists() else 0.0

    return (mtime(path / CONFIG), mtime(path / WEIGHTS))
