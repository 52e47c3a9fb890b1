"""The router: which mode (and adapter) should answer a question, and why.

Semantic-router style. Each adapter carries a profile (a description and example
questions, ``adapters/<name>/profile.json``). The question is embedded once; its
cosine similarity to each profile's sentences (best match) says whether a domain
adapter fits, and the top retrieval score says whether the documents cover it:

    adapter fits and documents cover it  -> layered
    adapter fits only                    -> adapter
    documents cover it only              -> prompt
    neither                              -> base

An adapter also fits when the documents cover the question and the best passage
belongs to the domain the adapter is named after (adapters are trained per domain),
because a short question can be far from every profile example yet plainly on topic.

Thresholds come from settings, or from ``data/router.json`` written by
``assistant router calibrate`` from a labelled file.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.answering.modes import Mode
from assistant.errors import AdapterError
from assistant.models.adapter_folder import PROFILE, profile_texts, read_profile

if TYPE_CHECKING:
    from assistant.retrieval.store import Hit

log = logging.getLogger(__name__)


@dataclass
class Thresholds:
    # Calibrated on the demo domain's routes.jsonl (`assistant router calibrate`): both sit
    # above what its general questions score.
    adapter: float = 0.55  # profile similarity at which a domain adapter is trusted
    retrieval: float = 0.30  # top passage similarity at which the documents cover a question

    @classmethod
    def load(cls, path: Path, default: Thresholds) -> Thresholds:
        """Calibrated thresholds when a calibration file exists, else the defaults."""
        if path.is_file():
            data = json.loads(path.read_text())
            return cls(adapter=data["adapter"], retrieval=data["retrieval"])
        return default


@dataclass
class Decision:
    mode: Mode  # one of ROUTED: never AUTO
    adapter: str | None
    reason: str
    scores: dict[str, float] = field(default_factory=dict)
    router_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Profile:
    stamp: float
    vectors: Any  # (n, dim) unit vectors of description + examples


class Router:
    """Embeds adapter profiles once (re-read when a profile changes) and decides per question."""

    def __init__(
        self,
        adapters_dir: Path,
        embed_documents: Callable[[list[str]], list[list[float]]],
        thresholds: Thresholds,
        usable: Callable[[str], bool] = lambda name: True,
    ) -> None:
        self.adapters_dir = Path(adapters_dir)
        self.embed_documents = embed_documents
        self.thresholds = thresholds
        self.usable = usable  # e.g. the adapter manager's validity check
        self._profiles: dict[str, _Profile] = {}
        self._lock = threading.Lock()

    def profile_names(self) -> list[str]:
        if not self.adapters_dir.is_dir():
            return []
        return sorted(p.parent.name for p in self.adapters_dir.glob(f"*/{PROFILE}"))

    def _profile(self, name: str) -> _Profile | None:
        import numpy as np

        folder = self.adapters_dir / name
        try:
            stamp = (folder / PROFILE).stat().st_mtime
        except OSError:  # removed since it was listed
            return None
        with self._lock:
            cached = self._profiles.get(name)
            if cached and cached.stamp == stamp:
                return cached
        try:
            written = read_profile(folder)
        except AdapterError as exc:  # one broken profile must not stop routing for everyone
            log.warning("ignoring a malformed router profile: %s", exc)
            return None
        texts = profile_texts(written) if written else []
        if not texts:
            return None
        profile = _Profile(stamp, np.asarray(self.embed_documents(texts), dtype=np.float32))
        with self._lock:
            self._profiles[name] = profile
        return profile

    def adapter_scores(self, query_vector: Sequence[float]) -> dict[str, float]:
        """Best cosine similarity of the question to each usable adapter's profile."""
        import numpy as np

        query = np.asarray(query_vector, dtype=np.float32)
        scores = {}
        for name in self.profile_names():
            profile = self._profile(name)
            if profile is not None and self.usable(name):
                scores[name] = round(float(np.max(profile.vectors @ query)), 4)
        return scores

    def decide(self, query_vector: Sequence[float], hits: Sequence[Hit]) -> Decision:
        """Mode and adapter for a question, from its embedding and its retrieval hits."""
        started = time.perf_counter()
        t = self.thresholds
        adapter_scores = self.adapter_scores(query_vector)
        best = max(adapter_scores, key=lambda n: adapter_scores[n]) if adapter_scores else None
        a_score = adapter_scores.get(best, 0.0) if best else 0.0
        r_score = round(max((h.score for h in hits), default=0.0), 4)
        covered = r_score >= t.retrieval
        fits = best is not None and a_score >= t.adapter
        top_domain = max(hits, key=lambda h: h.score).domain if hits else None
        if not fits and covered and top_domain in adapter_scores:
            best, a_score, fits = top_domain, adapter_scores[top_domain], True
            a_text = f"adapter {best}: the best passage is from its domain {best!r}"
        elif best:
            a_text = (f"adapter {best}: similarity {a_score:.2f} "
                      f"{'>=' if fits else '<'} {t.adapter:.2f}")
        else:
            a_text = "no adapter profiles"
        r_text = f"retrieval top score {r_score:.2f} {'>=' if covered else '<'} {t.retrieval:.2f}"
        mode = {(True, True): Mode.LAYERED, (True, False): Mode.ADAPTER,
                (False, True): Mode.PROMPT, (False, False): Mode.BASE}[(fits, covered)]
        scores = {"retrieval": r_score, **{f"adapter:{k}": v for k, v in adapter_scores.items()}}
        return Decision(
            mode=mode,
            adapter=best if fits else None,
            reason=f"{mode}: {a_text}; {r_text}",
            scores=scores,
            router_ms=round((time.perf_counter() - started) * 1000, 3),
        )


def calibrate(samples: Sequence[tuple[float, float, bool]]) -> tuple[Thresholds, float]:
    """Thresholds that best separate domain from general questions.

    ``samples`` are (best adapter score, top retrieval score, is_domain). A domain
    question is routed right when it goes anywhere but base; a general one when it goes
    to base. A general question reaching an adapter counts double: that is the worse
    mistake. Of all threshold pairs with the fewest errors, the one nearest the middle
    of that region is taken, so that it does not sit on the edge of the examples.
    """
    import numpy as np

    grid = np.round(np.arange(0.20, 0.905, 0.01), 2)
    a = np.array([s[0] for s in samples])[:, None, None]
    r = np.array([s[1] for s in samples])[:, None, None]
    domain = np.array([s[2] for s in samples])[:, None, None]
    ta, tr = grid[None, :, None], grid[None, None, :]
    to_adapter, to_docs = a >= ta, r >= tr
    errors = (
        (domain & ~(to_adapter | to_docs)) * 1.0
        + (~domain & to_adapter) * 2.0
        + (~domain & ~to_adapter & to_docs) * 1.0
    ).sum(axis=0)
    rows, cols = np.nonzero(errors == errors.min())
    centre = np.array([rows.mean(), cols.mean()])
    pick = np.argmin((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2)
    i, j = rows[pick], cols[pick]
    wrong = ((domain & ~(to_adapter | to_docs)) | (~domain & (to_adapter | to_docs)))[:, i, j]
    thresholds = Thresholds(adapter=float(grid[i]), retrieval=float(grid[j]))
    return thresholds, round(float(1 - wrong.mean()), 4)
