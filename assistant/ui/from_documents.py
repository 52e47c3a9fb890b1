"""Adapters -> "Train from documents": from a domain's documents to a verdict, in one place.

Why: adapter mode needs question/answer pairs and the evaluation needs held-out questions,
and hardly any user has either. Each step already exists as a service: `assistant synth`
(``synthesize_domain``), the background trainer (``services.training``) and `assistant eval`
(``evaluate``); this module only chains them for the browser, with a progress bar per step.

Generation and evaluation run in a worker thread (``Task``) so the handler can stream
progress and a Cancel button can stop the wait. ``synthesize_domain`` has no cancel hook,
so generation writes into a staging folder that replaces the domain's pairs only when it
ends uncancelled: a cancelled run leaves the previous pairs as they were. Evaluation stops
after the current answer (its progress callback raises).
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr

from assistant.errors import StrataError
from assistant.evaluation.plots import PLOTS
from assistant.training.from_domain import default_dir
from assistant.ui import training
from assistant.ui.common import Context, Refusal
from assistant.ui.from_documents_data import (
    HEADERS,
    apply_edits,
    sample_rows,
    synth_markdown,
    verdict_markdown,
    verdict_plots,
)

log = logging.getLogger(__name__)
POLL_S = 1.0
EVAL_MODES = ("prompt", "adapter", "layered")  # the verdict's question: which strategy pays
EVAL_TOKENS = 32  # short answers: the facts fit, and three modes finish in minutes on a CPU
HELP = (
    "Make training pairs and held-out questions from a domain's documents (no pairs written "
    "by hand), review a sample, train an adapter on them, and see how prompt mode, the "
    "adapter and both layered score on the held-out questions, and when the adapter pays "
    "back. Steps 1-4 run in order; each can be repeated. The same steps on the command line: "
    "`assistant synth --domain D`, `assistant train`, `assistant eval --domain D`."
)


class Cancelled(StrataError):
    """Raised inside a worker when the visitor pressed Cancel."""


class Task:
    """One background call at a time: its thread, progress, result or error, cancel flag."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.thread: threading.Thread | None = None
        self.cancel = threading.Event()
        self.result: Any = None
        self.error: str | None = None
        self.done, self.total, self.started = 0, 0, 0.0

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def elapsed(self) -> float:
        return time.time() - self.started if self.started else 0.0

    def start(self, work: Callable[[Task], object]) -> None:
        """Run ``work(self)`` in a daemon thread; refused while the previous call runs."""
        if self.running:
            state = "cancelled and still finishing" if self.cancel.is_set() else "running"
            raise StrataError(f"{self.what} is {state}; wait for it to end")
        self.cancel.clear()
        self.result, self.error = None, None
        self.done, self.total, self.started = 0, 0, time.time()
        self.thread = threading.Thread(target=self._run, args=(work,), daemon=True,
                                       name=self.what.replace(" ", "-"))
        self.thread.start()

    def _run(self, work: Callable[[Task], Any]) -> None:
        try:
            self.result = work(self)
        except Cancelled:
            self.error = "cancelled"
        except StrataError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - the app keeps running; the reason is shown
            log.exception("%s failed", self.what)
            self.error = f"{type(exc).__name__}: {exc}"

    def wait(self, timeout: float | None = None) -> None:
        """Block until the call ends (tests; the handlers poll instead)."""
        if self.thread is not None:
            self.thread.join(timeout)


def _synthesize_domain(*args: Any, **kwargs: Any) -> dict[str, Any]:
    from assistant.training.from_domain import synthesize_domain

    return synthesize_domain(*args, **kwargs)


def _evaluate(*args: Any, **kwargs: Any) -> dict[str, Any]:
    from assistant.evaluation.run import evaluate

    return evaluate(*args, **kwargs)


class Flow:
    """The handlers of the sub-tab; ``synthesize`` and ``evaluate`` are swappable for tests."""

    def __init__(self, ctx: Context, synthesize: Callable[..., dict[str, Any]] | None = None,
                 evaluate: Callable[..., dict[str, Any]] | None = None) -> None:
        self.ctx = ctx
        self.synthesize = synthesize or _synthesize_domain
        self.evaluate = evaluate or _evaluate
        self.synth = Task("generating pairs")
        self.evaluation = Task("the evaluation")
        self.reading = Task("the reading pairs")

    # --- domains and files ------------------------------------------------------------
    def domains(self, request: gr.Request) -> list[str]:
        """Domains this visitor's answers retrieve from (shared ones, and their own)."""
        store = self.ctx.services.store
        allowed = self.ctx.access.retrieval_domains(self.ctx.visitor(request), store)
        return sorted(allowed if allowed is not None else store.domains())

    @property
    def root(self) -> Path:
        return Path(self.ctx.services.settings.data_dir)

    def folder(self, domain: str) -> Path:
        return default_dir(self.ctx.services.settings.data_dir, domain)

    def domain_choices(self, request: gr.Request) -> Any:
        return gr.Dropdown(choices=self.domains(request))

    def checked(self, domain: str | None, request: gr.Request) -> str:
        """The domain, if this visitor may see it (the API accepts any string)."""
        if not domain:
            raise Refusal("Choose a domain first.")
        if domain not in self.domains(request):
            raise Refusal(f"no documents in domain {domain!r} that you can see")
        return domain

    def pairs(self, domain: str | None, request: gr.Request) -> tuple[str, list[list[Any]], str]:
        """What was synthesized for the domain before (a visitor coming back), if anything,
        and the domain's name as the adapter's."""
        if not domain or domain not in self.domains(request):
            return "", [], ""
        folder = self.folder(domain)
        report = folder / "report.json"
        if not report.is_file():
            return "No pairs for this domain yet: generate them (step 1).", [], domain
        text = synth_markdown(json.loads(report.read_text(encoding="utf-8")), self.root)
        return text, sample_rows(folder / "train.jsonl"), domain

    # --- 1. generate ----------------------------------------------------------------------
    def generate(self, domain: str, phrasings: float, rewordings: float, request: gr.Request,
                 progress: gr.Progress = gr.Progress()) -> Iterator[tuple[str, Any]]:
        """Synthesize in the worker, streaming elapsed time; then the report and a sample.
        ``rewordings``: training questions per fact the app's model adds (0: rules only)."""
        training.require_write(self.ctx, request, "generate training pairs")
        domain = self.checked(domain, request)
        target = self.folder(domain)
        try:
            self.synth.start(lambda task: self._synthesize(task, domain, int(phrasings),
                                                           int(rewordings or 0), target))
        except StrataError as exc:
            raise Refusal(str(exc)) from None
        task = self.synth
        while task.running and not task.cancel.is_set():
            progress((round(task.elapsed), None), desc=f"generating pairs from {domain}",
                     unit="s")
            yield f"Generating pairs from **{domain}**... {task.elapsed:.0f} s", gr.skip()
            time.sleep(POLL_S)
        if task.cancel.is_set():
            yield "Cancelled: the pairs being made are discarded; the previous ones stay.", []
        elif task.error:
            raise Refusal(f"generating pairs failed: {task.error}")
        else:
            yield synth_markdown(task.result, self.root), sample_rows(target / "train.jsonl")

    def _synthesize(self, task: Task, domain: str, phrasings: int, rewordings: int,
                    target: Path) -> Any:
        """In the worker: write into a staging folder, move it into place unless cancelled."""
        staging = target.with_name(f".{target.name}.staging")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            report = self.synthesize(self.ctx.services, domain, staging, phrasings=phrasings,
                                     model_rewordings=rewordings, progress_bar=False,
                                     writer="learned")  # the rules when no writer adapter
            if task.cancel.is_set():
                raise Cancelled("cancelled")
            shutil.rmtree(target, ignore_errors=True)
            staging.replace(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        report["files"] = {name: str(target / Path(path).name)
                           for name, path in report["files"].items()}
        (target / "report.json").write_text(  # it named the staging folder
            json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return report

    def stop_generating(self, request: gr.Request) -> str:
        training.require_write(self.ctx, request, "generate training pairs")
        if not self.synth.running:
            return "No generation is running."
        self.synth.cancel.set()
        return "Cancelled: the pairs being made are discarded; the previous ones stay."

    # --- 2. review, 3. train ----------------------------------------------------------------
    def train(self, domain: str, name: str, epochs: float, overwrite: bool, rows: Any,
              reading: bool, request: gr.Request, progress: gr.Progress = gr.Progress()
              ) -> Iterator[tuple[str, Any]]:
        """Save the table's edits into train.jsonl, then train on it in services.training.
        ``reading``: each pair with the passages layered mode shows it (an adapter that
        reads; training/reading.py), made in the worker first."""
        training.require_write(self.ctx, request)
        domain = self.checked(domain, request)
        data = self.folder(domain) / "train.jsonl"
        if not data.is_file():
            raise Refusal("Generate the pairs first (step 1).")
        try:
            changed, dropped = apply_edits(data, table_rows(rows))
        except StrataError as exc:
            raise Refusal(str(exc)) from None
        note = f"Saved {changed} edited and {dropped} removed pairs into train.jsonl.\n\n"
        if reading:
            data = yield from self._reading_pairs(domain, data, note)
        try:
            self.ctx.services.training.start((name or "").strip() or domain, data,
                                             overwrite=overwrite, epochs=int(epochs))
        except StrataError as exc:
            raise Refusal(str(exc)) from None
        for status, curve in training.follow(self.ctx, progress):
            yield note + status, curve

    def _reading_pairs(self, domain: str, data: Path, note: str
                       ) -> Generator[tuple[str, Any], None, Path]:
        """In the worker: the reading pairs of ``data`` (reading.jsonl beside it)."""
        from assistant.training.data import load_examples
        from assistant.training.reading import pipeline_contexts, write_reading_file

        out = data.with_name("reading.jsonl")
        services = self.ctx.services
        self.reading.start(lambda task: write_reading_file(
            load_examples(data), pipeline_contexts(services.pipeline, domain), out))
        task = self.reading
        while task.running:
            yield (note + f"Finding the passages layered mode shows each question... "
                   f"{task.elapsed:.0f} s"), gr.skip()
            time.sleep(POLL_S)
        if task.error:
            raise Refusal(f"making the reading pairs failed: {task.error}")
        return out

    # --- 4. evaluate -------------------------------------------------------------------------
    def run_eval(self, domain: str, name: str, tokens: float, limit: float | None,
                 request: gr.Request, progress: gr.Progress = gr.Progress()
                 ) -> Iterator[tuple[Any, ...]]:
        """Prompt, adapter and layered on the held-out questions, in the worker; the verdict."""
        training.require_write(self.ctx, request, "run evaluations")
        domain = self.checked(domain, request)
        adapter = (name or "").strip() or domain
        questions = self.folder(domain) / "test.jsonl"
        if not questions.is_file():
            raise Refusal("Generate the pairs first (step 1).")
        try:
            self.ctx.services.adapters.check(adapter)  # unknown or unsafe: refused at once
            self.evaluation.start(lambda task: self._evaluate(
                task, domain, adapter, int(tokens), int(limit or 0) or None))
        except StrataError as exc:
            raise Refusal(str(exc)) from None
        task, skip = self.evaluation, (gr.skip(),) * 4
        while task.running:
            if task.total:
                progress((task.done, task.total), desc=f"evaluating {adapter}", unit="answers")
            yield (f"Evaluating **{adapter}**: {task.done}/{task.total or '?'} answers, "
                   f"{task.elapsed:.0f} s", *skip)
            time.sleep(POLL_S)
        if task.error == "cancelled":
            yield ("Evaluation cancelled.", *skip)
        elif task.error:
            raise Refusal(f"the evaluation failed: {task.error}")
        else:
            yield (f"Evaluated **{adapter}** in {task.elapsed:.0f} s.",
                   verdict_markdown(task.result, self.root), *verdict_plots(task.result))

    def _evaluate(self, task: Task, domain: str, adapter: str, tokens: int,
                  limit: int | None) -> Any:
        def progress(done: int, total: int, _row: dict[str, Any]) -> None:
            task.done, task.total = done, total
            if task.cancel.is_set():
                raise Cancelled("cancelled")

        folder = self.folder(domain)
        note = (f"Questions: the held-out set synthesized from the documents of domain "
                f"`{domain}` in the app (Adapters -> Train from documents).")
        return self.evaluate(self.ctx.services, folder / "test.jsonl", folder / f"eval-{adapter}",
                             modes=list(EVAL_MODES), adapter=adapter, max_new_tokens=tokens,
                             limit=limit, progress=progress, show_bar=False,
                             questions_note=note, domains=[domain])

    def stop_training(self, request: gr.Request) -> str:
        training.require_write(self.ctx, request)
        if self.ctx.services.training.cancel():
            return "Cancelling after the current step; nothing will be written."
        return "No training is running."

    def stop_eval(self, request: gr.Request) -> str:
        training.require_write(self.ctx, request, "run evaluations")
        if not self.evaluation.running:
            return "No evaluation is running."
        self.evaluation.cancel.set()
        return "Cancelling after the current answer."


def table_rows(value: Any) -> list[list[Any]]:
    """The Dataframe's value as rows (a list from the browser, a dict from gradio_client)."""
    if isinstance(value, dict):
        return [list(row) for row in value.get("data") or []]
    if hasattr(value, "values") and hasattr(value, "columns"):  # a pandas DataFrame
        return value.values.tolist()
    return [list(row) for row in value or []]


def build(ctx: Context, tab: Any, flow: Flow | None = None) -> list[Any]:
    """Lay out the four steps and wire them; returns the events that end with an adapter
    trained or evaluated (the Adapters tab then refreshes its table: name, eval score)."""
    flow = flow or Flow(ctx)
    ui = layout(ctx)
    tab.select(flow.domain_choices, None, [ui.domain], api_visibility="private")
    ui.domain.input(flow.pairs, [ui.domain], [ui.synth_status, ui.table, ui.name],
                    api_name="documents_pairs")
    ui.generate.click(flow.generate, [ui.domain, ui.phrasings, ui.rewordings],
                      [ui.synth_status, ui.table],
                      api_name="generate_pairs")
    ui.cancel.click(flow.stop_generating, None, [ui.synth_status], api_name="cancel_pairs",
                    queue=False)
    ui.cancel_train.click(flow.stop_training, None, [ui.train_status],
                          api_visibility="private", queue=False)
    evaluated = ui.evaluate.click(flow.run_eval, [ui.domain, ui.name, ui.tokens, ui.limit],
                                  [ui.eval_status, ui.verdict, *ui.plots],
                                  api_name="evaluate_from_documents")
    ui.cancel_eval.click(flow.stop_eval, None, [ui.eval_status], api_name="cancel_evaluation",
                         queue=False)
    trained = ui.train.click(flow.train, [ui.domain, ui.name, ui.epochs, ui.overwrite, ui.table,
                                          ui.reading],
                             [ui.train_status, ui.curve], api_name="train_from_documents")
    return [trained, evaluated]


def layout(ctx: Context) -> SimpleNamespace:
    """The components, top to bottom in the order of the steps."""
    gr.Markdown(HELP)
    ui = SimpleNamespace()
    with gr.Row():
        ui.domain = gr.Dropdown([], label="Domain (from the knowledge base)", scale=3,
                                allow_custom_value=True,  # choices are per visitor: checked()
                                elem_id="fd-domain")
        ui.phrasings = gr.Slider(1, 6, value=3, step=1, label="Training questions per fact",
                                 scale=2)
        ui.rewordings = gr.Slider(
            0, 6, value=0, step=1, scale=2, label="Model rewordings per fact",
            info="More training questions, written by the app's model and checked; slow, "
            "and worth it with a larger model than the bundled one (0: rules only)")
    with gr.Row():
        ui.generate = gr.Button("1. Generate pairs", variant="primary", elem_id="fd-generate")
        ui.cancel = gr.Button("Cancel generating", variant="stop", elem_id="fd-cancel")
    ui.synth_status = gr.Markdown(elem_id="fd-synth-status")
    ui.table = gr.Dataframe(
        headers=HEADERS, type="array", interactive=True, static_columns=[0], wrap=True,
        column_widths=["7%", "38%", "40%", "15%"], elem_id="fd-pairs",
        label="2. Review a sample of the pairs (edit a cell; clear a question to remove its pair)")
    with gr.Row():
        ui.name = gr.Textbox(label="Adapter name", placeholder="the domain's name", max_lines=1,
                             elem_id="fd-name")
        ui.epochs = gr.Slider(1, 30, value=ctx.services.settings.train_epochs, step=1,
                              label="Epochs")
        ui.overwrite = gr.Checkbox(label="Replace an existing adapter of this name")
        ui.reading = gr.Checkbox(
            label="An adapter that reads", value=False, elem_id="fd-reading",
            info="Train each question with the passages layered mode shows it (a fifth "
            "without the fact's sentence): for layered mode; slower to train")
    with gr.Row():
        ui.train = gr.Button("3. Save edits and train", variant="primary", elem_id="fd-train")
        ui.cancel_train = gr.Button("Cancel training", variant="stop")
    ui.train_status = gr.Markdown(elem_id="fd-train-status")
    ui.curve = gr.Plot(label="Loss", elem_id="fd-curve")
    with gr.Row():
        ui.tokens = gr.Slider(8, 128, value=EVAL_TOKENS, step=8, label="Answer length (tokens)")
        ui.limit = gr.Number(0, precision=0, minimum=0, label="Questions to ask (0 = all; else "
                             "the first N, in-scope ones come first)", elem_id="fd-limit")
        ui.evaluate = gr.Button("4. Evaluate prompt, adapter, layered", variant="primary",
                                elem_id="fd-evaluate")
        ui.cancel_eval = gr.Button("Cancel evaluation", variant="stop")
    ui.eval_status = gr.Markdown(elem_id="fd-eval-status")
    ui.verdict = gr.Markdown(elem_id="fd-verdict")
    with gr.Row():
        ui.plots = [gr.Plot(label=title, show_label=False, elem_id=f"fd-{stem}")
                    for stem, title in PLOTS.items()]  # each figure carries its title
    return ui
