"""Training an adapter from the browser, inside the Adapters tab.

The work runs in ``services.training`` (assistant/training/jobs.py), a background thread, so
chat keeps answering; this module only starts it, polls it for the progress bar and the loss
curve, and cancels it. New adapters are re-read from disk by the Chat, Compare and Adapters
lists, so they appear there without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.errors import StrataError
from assistant.evaluation.plots import empty_plot
from assistant.training.jobs import JobStatus
from assistant.ui.common import Context, Refusal, figure
from assistant.ui.files import discard_upload

if TYPE_CHECKING:
    from matplotlib.figure import Figure

POLL_S = 1.0
FORMAT_HELP = (
    "Upload question/answer pairs: a `.jsonl` file with one "
    '`{"question": "...", "answer": "..."}` per line, or a `.csv` file with `question` and '
    "`answer` columns. Several phrasings of each question teach a small model far more than "
    "one (see `knowledge/harrowgate-water/qa/train.jsonl`). Training runs in the background: "
    "chat stays available, and you can close this page and come back."
)


def build(ctx: Context) -> list[Any]:
    """Lay out the form; returns the events that end with a run finished (to chain a refresh)."""
    s = ctx.services.settings
    gr.Markdown(FORMAT_HELP)
    with gr.Row():
        name = gr.Textbox(label="Adapter name", placeholder="my-domain", max_lines=1,
                          elem_id="train-name")
        data = gr.File(label="Training pairs (.jsonl or .csv)", file_types=[".jsonl", ".csv"],
                       type="filepath", elem_id="train-data")
    with gr.Row():
        epochs = gr.Slider(1, 30, value=s.train_epochs, step=1, label="Epochs")
        overwrite = gr.Checkbox(label="Replace an existing adapter of this name")
    with gr.Row():
        start = gr.Button("Train adapter", variant="primary", elem_id="train")
        cancel = gr.Button("Cancel training", variant="stop", elem_id="train-cancel")
        watch = gr.Button("Show progress", elem_id="train-watch")
    status = gr.Markdown(elem_id="train-status")
    curve = gr.Plot(label="Loss", elem_id="train-curve")

    def train(adapter: str, path: str | None, n_epochs: float, replace: bool,
              request: gr.Request, progress: gr.Progress = gr.Progress()) -> Iterator[Any]:
        try:
            require_write(ctx, request)
            ctx.services.training.start(adapter, path, overwrite=replace, epochs=int(n_epochs))
        except StrataError as exc:
            raise Refusal(str(exc)) from None
        finally:  # accepted (kept in data_dir now) or refused: out of the web server's reach
            if path is not None:
                discard_upload(path)
        yield from follow(ctx, progress)

    def show(progress: gr.Progress = gr.Progress()) -> Iterator[Any]:
        yield from follow(ctx, progress)

    def stop(request: gr.Request) -> str:
        require_write(ctx, request)
        if ctx.services.training.cancel():
            return "Cancelling after the current step; nothing will be written."
        return "No training is running."

    cancel.click(stop, None, [status], api_name="cancel_training", queue=False)
    return [
        start.click(train, [name, data, epochs, overwrite], [status, curve],
                    api_name="train_adapter"),
        watch.click(show, None, [status, curve], api_name="training_status"),
    ]


def follow(ctx: Context, progress: gr.Progress | None = None) -> Iterator[tuple[str, Any]]:
    """Yield (status, loss curve) every POLL_S until the run ends; the last one says how."""
    jobs = ctx.services.training
    drawn = None  # the loss points last drawn: a step takes seconds, a poll 1 s
    while True:
        job = jobs.status()
        if progress is not None and job.running and job.total:
            progress((job.step, job.total), desc=f"training {job.name}", unit="steps")
        points = (len(job.losses), len(job.val_losses))
        curve = loss_figure(job) if points != drawn or not job.running else gr.skip()
        drawn = points
        yield status_markdown(job), curve
        if not job.running:
            return
        time.sleep(POLL_S)


def status_markdown(job: JobStatus) -> str:
    if job.state == "idle":
        return "No training has run since the app started."
    head = {"running": "Training", "done": "Trained", "failed": "Training failed:",
            "cancelled": "Cancelled:", "interrupted": "Interrupted:"}.get(job.state, job.state)
    lines = [f"{head} **{job.name}** — {job.message}"]
    if job.total:
        val = f", validation loss {job.val_loss:.3f}" if job.val_loss is not None else ""
        loss = f", loss {job.loss:.3f}" if job.loss is not None else ""
        lines.append(f"step {job.step}/{job.total}{loss}{val}, {job.elapsed:.0f} s")
    if job.card:
        card = job.card
        best = card.get("best_val_loss")
        val = f", best validation loss {best}" if best is not None else " (no validation)"
        lines.append(
            f"{card['epochs_run']} epochs{val}, "
            f"{card['adapter_bytes'] / 2**20:.1f} MB, estimated cost ${card['cost_usd']:.4f}. "
            "It is now in the Chat and Compare adapter lists (Adapter, Layered and Auto modes)."
        )
    return "\n\n".join(lines)


def loss_figure(job: JobStatus) -> Figure:
    """Training loss per step, validation loss per epoch (log scale once it falls far)."""
    fig, ax = figure(8.0, 2.8)
    if not job.losses:
        empty_plot(ax, "the loss curve appears here while an adapter trains")
        return fig
    ax.plot(*zip(*job.losses), label="training loss", linewidth=1)
    if job.val_losses:
        ax.plot(*zip(*job.val_losses), "o-", label="validation loss (per epoch)")
    values = [loss for _, loss in job.losses]
    if min(values) > 0 and max(values) / min(values) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_xlim(0, max(job.total, job.losses[-1][0]))
    ax.legend(fontsize=8)
    return fig


def require_write(ctx: Context, request: gr.Request | None, action: str = "train adapters") -> None:
    """Refuse, as a message in the page, a change this visitor may not make (see access.py)."""
    try:
        ctx.access.require_write(ctx.visitor(request), action)
    except StrataError as exc:
        raise Refusal(str(exc)) from None
