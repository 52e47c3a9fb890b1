"""The models the API offers: one per answer mode and one per usable adapter.

A client picks Strata's strategy the way it picks any model: ``strata`` lets the router
choose (auto), ``strata-prompt``, ``strata-layered`` and ``strata-base`` force a mode, and
an adapter's own name answers in adapter mode with that adapter. Adapters are re-read
on every call, so one trained while the app runs is listed (and usable) at once. The mode
names win over an adapter that happens to share one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.answering.modes import Mode
from assistant.api.errors import ApiError

if TYPE_CHECKING:
    from assistant.models.adapters import AdapterInfo, AdapterManager

PREFIX = "strata"
MODE_MODELS = {
    PREFIX: Mode.AUTO,
    f"{PREFIX}-prompt": Mode.PROMPT,
    f"{PREFIX}-layered": Mode.LAYERED,
    f"{PREFIX}-base": Mode.BASE,
}
OWNER = "strata"


@dataclass(frozen=True)
class Route:
    """What a model id asks the Pipeline for."""

    mode: Mode
    adapter: str | None = None


class Catalog:
    """Model ids over the adapters (``list()`` and ``info(name)`` of the adapter manager)."""

    def __init__(self, adapters: AdapterManager) -> None:
        self.adapters = adapters
        self.started = int(time.time())

    def models(self) -> list[dict[str, Any]]:
        """OpenAI's model objects, modes first, then the usable adapters by name."""
        rows = [self._model(name, self.started, mode) for name, mode in MODE_MODELS.items()]
        for info in self.adapters.list():
            if info.ok and info.name not in MODE_MODELS:
                rows.append(self._model(info.name, _created(info.path), Mode.ADAPTER, info.name))
        return rows

    def model(self, model_id: str) -> dict[str, Any]:
        """One model object, or a 404."""
        route = self.resolve(model_id)
        if route.adapter is None:
            return self._model(model_id, self.started, route.mode)
        info = self.adapters.info(route.adapter)
        return self._model(model_id, _created(info.path), route.mode, route.adapter)

    def resolve(self, model_id: str) -> Route:
        """The mode and adapter a model id names, or a 404 listing the choices."""
        if model_id in MODE_MODELS:
            return Route(MODE_MODELS[model_id])
        info = self._adapter(model_id)
        if info is not None and info.ok:
            return Route(Mode.ADAPTER, model_id)
        problem = f" ({info.problem})" if info is not None else ""
        choices = ", ".join(row["id"] for row in self.models())
        raise ApiError(404, f"The model {model_id!r} does not exist or is not usable{problem}. "
                       f"Available: {choices}.", "model", "model_not_found")

    def _adapter(self, name: str) -> AdapterInfo | None:
        known = {info.name: info for info in self.adapters.list()}
        return known.get(name)

    @staticmethod
    def _model(model_id: str, created: int, mode: Mode, adapter: str | None = None
               ) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": created, "owned_by": OWNER,
                "strata": {"mode": str(mode), "adapter": adapter}}


def _created(path: str) -> int:
    try:
        return int(Path(path).stat().st_mtime)
    except OSError:
        return 0
