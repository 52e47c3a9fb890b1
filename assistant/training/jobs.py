"""Adapter training in the background for the app: one run at a time, progress to poll, cancel.

The app must keep answering while an adapter trains, so ``train_adapter`` runs in a daemon
thread; visitors poll ``status()`` (a copy, safe to read from any thread). Only one run at a
time: two would split a 2-core machine and each take twice as long. Bad input is refused in
``start`` before the thread exists (unknown type, too large, malformed lines, a taken name),
so the visitor sees the reason at once and nothing is written. The uploaded file is copied
under ``data_dir/training-data/`` first: the card names the file an adapter came from, and
an upload's temporary copy does not last.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import StrataError, TrainingCancelled, TrainingDataError
from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.ledger.store import Ledger

log = logging.getLogger(__name__)

RUNNING = "running"
INTERRUPTED = "interrupted"  # the app stopped during the run


@dataclass(frozen=True)
class JobStatus:
    """One snapshot of the current (or last) run."""

    state: str = "idle"  # idle, running, done, failed, cancelled, interrupted
    name: str = ""
    step: int = 0
    total: int = 0
    loss: float | None = None
    val_loss: float | None = None
    started: float = 0.0  # time.time()
    finished: float = 0.0
    message: str = ""
    card: dict[str, Any] | None = None
    losses: tuple[tuple[int, float], ...] = field(default=())  # (step, train loss)
    val_losses: tuple[tuple[int, float], ...] = field(default=())  # (step, validation loss)

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0

    @property
    def elapsed(self) -> float:
        end = self.finished or time.time()
        return max(0.0, end - self.started) if self.started else 0.0


class TrainingJobs:
    """Starts, watches and cancels background training runs for one adapters folder."""

    def __init__(self, settings: Settings, quant: str, ledger: Ledger | None = None) -> None:
        self.settings = settings
        self.quant = quant  # train against the same weights that serve the adapter
        self.ledger = ledger  # the app's ledger: each finished run is recorded there
        self._lock = threading.Lock()
        self._status = JobStatus()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_record = False  # the interrupted run is in the ledger (once)

    def status(self) -> JobStatus:
        with self._lock:
            return self._status

    def start(self, name: str, data: Path | str | None, *, overwrite: bool = False,
              **overrides: Any) -> JobStatus:
        """Check everything that can be checked quickly, then train in a thread."""
        from assistant.training import card as adapter_card
        from assistant.training.data import load_examples
        from assistant.training.loop import TrainConfig

        name = (name or "").strip()
        source = Path(data) if data else None
        if source is None or not source.is_file():
            raise TrainingDataError("choose a .jsonl or .csv file of question/answer pairs")
        size_mb = source.stat().st_size / 2**20
        if size_mb > self.settings.max_upload_mb:
            raise TrainingDataError(
                f"{source.name}: {size_mb:.1f} MB is over the {self.settings.max_upload_mb:g} MB "
                "limit (max_upload_mb)")
        given = {k: v for k, v in overrides.items() if v is not None}
        config = TrainConfig.from_settings(self.settings, quant=self.quant, **given)
        adapter_card.check_target(self.settings.adapters_dir, name, overwrite)
        examples = load_examples(source, config.min_examples)
        with self._lock:
            if self._status.running:
                raise StrataError(
                    f"adapter {self._status.name!r} is training (step {self._status.step}/"
                    f"{self._status.total}); wait for it or cancel it first")
            kept = self._keep(source, name)
            self._cancel.clear()
            self._status = JobStatus(
                state=RUNNING, name=name, started=time.time(),
                message=f"training on {len(examples)} pairs from {source.name}")
            self._thread = threading.Thread(
                target=self._run, args=(name, kept, config, overwrite),
                name=f"train-{name}", daemon=True)
            self._thread.start()
            return self._status

    def cancel(self) -> bool:
        """Ask the running job to stop after its current step; False when none runs."""
        with self._lock:
            if not self._status.running:
                return False
            self._cancel.set()
            self._status = replace(self._status, message="cancelling after the current step")
            return True

    def interrupt(self) -> bool:
        """The app is stopping: cancel the run (it stops after its step and writes nothing)
        and mark it interrupted now, so the pages following it stop waiting for it; False
        when none runs. ``wait`` then gives its thread time to reach that point."""
        with self._lock:
            s = self._status
            if not s.running:
                return False
            self._on_record = False
            self._cancel.set()
            self._status = replace(s, state=INTERRUPTED, finished=time.time(),
                                   message=f"interrupted at step {s.step}/{s.total}: the app "
                                   "stopped; nothing was written")
        log.warning("training %s: %s", s.name, self._status.message)
        return True

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the current run ends (tests and the CLI; the UI polls instead). An
        interrupted run is in the ledger's trainings table when this returns, whether or
        not its thread reached its safe point in ``timeout`` (the app is about to close
        the ledger)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._record_interrupted()
        return self.status()

    # --- inside the worker thread --------------------------------------------------
    def _run(self, name: str, data: Path, config: Any, overwrite: bool) -> None:
        from assistant.training.loop import train_adapter

        try:
            result = train_adapter(name, data, config, self.settings, ledger=self.ledger,
                                   overwrite=overwrite,
                                   on_progress=self._progress, cancel=self._cancel,
                                   progress_bar=False)
        except TrainingCancelled:
            self._finish("cancelled", "cancelled: nothing was written")
            self._record_interrupted()  # at its safe point: the steps it really ran
        except StrataError as exc:
            self._finish("failed", str(exc))
        except Exception as exc:  # noqa: BLE001 - the app keeps running; the reason is shown
            log.exception("training %s failed", name)
            self._finish("failed", f"training failed: {type(exc).__name__}: {exc}")
        else:
            card = result.card
            self._finish("done", f"adapter {name!r} is ready: {card['steps']} steps in "
                         f"{card['seconds']:.0f} s", card)

    def _progress(self, step: int, total: int, loss: float, val_loss: float | None) -> None:
        with self._lock:
            s = self._status
            new_step = not s.losses or s.losses[-1][0] != step  # epoch ends repeat the step
            val_losses = s.val_losses
            if val_loss is not None and val_loss != s.val_loss:
                val_losses += ((step, float(val_loss)),)
            self._status = replace(
                s, step=step, total=total, loss=loss,
                val_loss=val_loss if val_loss is not None else s.val_loss,
                losses=s.losses + ((step, float(loss)),) if new_step else s.losses,
                val_losses=val_losses)

    def _finish(self, state: str, message: str, card: dict[str, Any] | None = None) -> None:
        with self._lock:
            if state == "cancelled" and self._status.state == INTERRUPTED:
                return  # the app's stop cancelled it: interrupted says why
            self._status = replace(self._status, state=state, message=message, card=card,
                                   finished=time.time())
        log.info("training %s: %s", self._status.name, message)

    def _record_interrupted(self) -> None:
        """Record an interrupted run in the ledger's trainings table, once: its time and
        compute were spent though no adapter was written (state ``interrupted``)."""
        from assistant.ledger.costs import training_cost

        with self._lock:
            s = self._status
            if self.ledger is None or s.state != INTERRUPTED or self._on_record:
                return
            self._on_record = True
        seconds = round(s.elapsed, 1)
        try:
            self.ledger.record_training(
                s.name, base_model=self.settings.base_model, seconds=seconds,
                cost_usd=training_cost(seconds, self.settings), steps=s.step,
                card={"state": INTERRUPTED, "message": s.message, "planned_steps": s.total,
                      "quant": self.quant}, state=INTERRUPTED)
        except Exception:  # noqa: BLE001 - stopping goes on; the log says what was lost
            log.exception("training %s: the interrupted run could not be recorded", s.name)

    def _keep(self, source: Path, name: str) -> Path:
        folder = self.settings.data_dir / "training-data"
        folder.mkdir(parents=True, exist_ok=True)
        kept = folder / f"{name}{source.suffix.lower()}"
        if source.resolve() != kept.resolve():
            shutil.copyfile(source, kept)
        return kept
