"""The llama.cpp engine's LoRA handles: each adapter converted (lora_gguf.py) and loaded onto
the shared model once per weights file, at its first answer or by the Adapters tab's Load
button, and unloaded by its Unload button.

A handle may be applied to the step being decoded, so only the decoding worker frees one:
an unloaded or retrained adapter's old handle waits in ``retired`` until the worker stops
applying it (llamacpp.py). One lock covers the table, so the worker and the web app never
convert or load the same adapter twice at once.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from assistant.errors import StrataError

if TYPE_CHECKING:
    from assistant.models.adapters import AdapterManager

log = logging.getLogger(__name__)


class Loras:
    """Adapter name -> llama.cpp LoRA handle on ``model`` (the engine's weights)."""

    def __init__(self, llama_cpp: ModuleType, model: object, gguf: Path, cache_dir: Path,
                 adapters: AdapterManager) -> None:
        self._llama_cpp, self._model, self.gguf, self.cache_dir = llama_cpp, model, gguf, cache_dir
        self.adapters = adapters
        self._handles: dict[str, tuple[object, str]] = {}  # name -> (handle, weights key)
        self._retired: list[tuple[str, object]] = []  # (name, handle) for the worker to free
        self._warned: set[tuple[str, str]] = set()  # (name, weights key): precision said once
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        """The adapters loaded now (a copy: another thread may be loading one)."""
        return sorted(self._handles.copy())

    def handle(self, name: str) -> object:
        """The adapter's handle, converted and loaded once per weights file (a retrained
        adapter is loaded again and its old handle retired)."""
        folder = self.adapters.path_of(name)
        with self._lock:
            key = _weights_key(folder)
            known = self._handles.get(name)
            if known and known[1] == key:
                return known[0]
            handle = self._open(name, folder, key)
            if known:
                self._retired.append((name, known[0]))
            self._handles[name] = (handle, key)
            return handle

    def load(self, name: str) -> float:
        """Load an adapter now rather than at its first answer; seconds it took (0: it
        already was)."""
        self.adapters.check(name)
        folder = self.adapters.path_of(name)
        with self._lock:
            known = self._handles.get(name)
            if known and known[1] == _weights_key(folder):
                return 0.0
        started = time.perf_counter()
        self.handle(name)
        return round(time.perf_counter() - started, 4)

    def unload(self, name: str) -> bool:
        """Stop serving the adapter's handle (its next answer loads it again); False when it
        was not loaded."""
        with self._lock:
            known = self._handles.pop(name, None)
            if known:
                self._retired.append((name, known[0]))
        return known is not None

    def take_retired(self) -> list[tuple[str, object]]:
        """The handles no longer served, for the worker to stop applying, then ``free``."""
        with self._lock:
            retired, self._retired = self._retired, []
        return retired

    def free(self, handle: object) -> None:
        self._llama_cpp.llama_adapter_lora_free(handle)

    def _open(self, name: str, folder: Path, key: str) -> object:
        from assistant.backends.lora_gguf import convert
        from assistant.models.adapter_folder import Card, precision_mismatch

        mismatch = precision_mismatch(name, Card.read(folder), "gguf")
        if mismatch and (name, key) not in self._warned:
            self._warned.add((name, key))  # once per adapter version, not at every reopen
            log.warning(mismatch)
        path = convert(folder, self.gguf, self.cache_dir)
        handle = self._llama_cpp.llama_adapter_lora_init(self._model, str(path).encode())
        if not handle:
            raise StrataError(f"llama.cpp could not load adapter {name!r} from {path}")
        log.info("llama.cpp: adapter %s ready (%s)", name, path.name)
        return handle


def _weights_key(folder: Path) -> str:
    """Which weights an adapter folder holds now (a retrained adapter changes it)."""
    stat = (folder / "adapter_model.safetensors").stat()
    return f"{stat.st_mtime_ns}-{stat.st_size}"
