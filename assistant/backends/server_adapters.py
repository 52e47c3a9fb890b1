"""Adapters on a served model: registered with the server when it lacks them.

vLLM serves many LoRA adapters over one base and picks one per request by the request's
``model``. It knows the adapters it was started with (``--lora-modules``) and any added
later through ``POST /v1/load_lora_adapter``. So that an adapter trained while the app
runs is usable at once, an adapter the server does not list is loaded from the adapters
folder (as the server sees it) before its first answer, and one retrained since it was
loaded is reloaded. The local adapter manager still validates each adapter first (name,
safetensors only, trained for this base), so the server never reads a refused one.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from assistant.backends.base import detail
from assistant.errors import AdapterError
from assistant.models.adapter_folder import CONFIG, WEIGHTS

if TYPE_CHECKING:
    import httpx

    from assistant.models.adapters import AdapterManager

log = logging.getLogger(__name__)


class ServerAdapters:
    """Keeps the server's adapters in step with the adapters folder."""

    def __init__(self, http: httpx.Client, adapters: AdapterManager, server_dir: str,
                 allowed: bool = True) -> None:
        self.http, self.adapters = http, adapters
        self.url = str(http.base_url).rstrip("/")
        self.server_dir = server_dir
        self.allowed = allowed
        self._seen: dict[str, tuple[float, float]] = {}  # name -> files' mtimes when loaded
        self._lock = threading.Lock()

    def served(self) -> set[str]:
        """The model names the server answers to (its base and its adapters)."""
        import httpx

        try:
            response = self.http.get("/models")
        except httpx.TransportError as exc:
            raise AdapterError(f"the generation server at {self.url} did not answer ({exc})"
                               ) from exc
        if response.status_code != 200:
            return set()  # some servers list nothing; loading will tell
        return {m.get("id") for m in response.json().get("data", []) if m.get("id")}

    def ensure(self, name: str) -> str:
        """The ``model`` to request for adapter ``name``, registering it when needed."""
        self.adapters.check(name)  # unknown, unsafe or for another base: refused here
        stamps = _stamps(self.adapters.path_of(name))
        with self._lock:
            if self._seen.get(name) == stamps:
                return name
            served = self.served()
            if name in served and name not in self._seen:  # the server started with it
                self._seen[name] = stamps
                return name
            if not self.allowed:
                raise AdapterError(
                    f"adapter {name!r} is not loaded on the generation server at {self.url}, "
                    "and loading adapters at run time is off (ASSISTANT_BACKEND_LOAD_ADAPTERS)")
            if name in served:  # retrained since it was loaded: the server has the old one
                self._post("/unload_lora_adapter", {"lora_name": name}, name)
            self._post("/load_lora_adapter",
                       {"lora_name": name, "lora_path": self.server_path(name)}, name)
            self._seen[name] = stamps
            log.info("loaded adapter %s into the server at %s", name, self.url)
            return name

    def server_path(self, name: str) -> str:
        return str(PurePosixPath(self.server_dir) / name)

    def _post(self, path: str, body: dict[str, str], name: str) -> None:
        import httpx

        try:
            response = self.http.post(path, json=body)
        except httpx.TransportError as exc:
            raise AdapterError(f"the generation server at {self.url} did not answer while "
                               f"loading adapter {name!r} ({exc})") from exc
        if response.status_code != 200:
            raise AdapterError(
                f"the generation server at {self.url} refused adapter {name!r} "
                f"(HTTP {response.status_code}: {detail(response)}); "
                "the server needs --enable-lora, "
                "a --max-lora-rank of at least the adapter's rank, and "
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (or --lora-modules "
                f"{name}=<its path> at start-up)")


def _stamps(folder: Path) -> tuple[float, float]:
    """When the adapter's files last changed: a retrained adapter has new ones."""
    return tuple(  # type: ignore[return-value]
        (folder / f).stat().st_mtime if (folder / f).exists() else 0.0 for f in (CONFIG, WEIGHTS))
