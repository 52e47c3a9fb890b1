"""`assistant eval`: every question in every mode through the normal pipeline, scored.

Answers go through ``Pipeline.ask`` (same prompts, routing, cost model and one ledger
row each), so the comparison shows what a user would get, not a lab set-up. The
scores are deliberately simple so anyone can check a row by eye:

* fact recall: share of the question's ``must_contain`` strings found in the answer
  (case-insensitive; "23" not inside "2023"). Wording may vary; the fact may not.
* similarity: cosine of answer and reference answer under the services' embedder,
  credit for a right answer in other words (a soft check beside recall).
* quoted: prompt and layered mode replace an answer their context does not support by
  quotes from that context (``grounding.py``); the share of such answers (``quoted_rate``)
  and the recall of the model's own text (``generated_recall``) are reported beside the
  recall of what was shown.
* declined: does the answer decline (``DECLINE_PHRASES``)? Scored for out-of-scope
  questions as the *decline rate*; they never count toward recall or similarity.
  On in-scope questions the same check gives the *false decline rate*.

Modes travel as ``Mode`` from the parsed ``--modes`` to the rows and the summary; a Mode
is a ``str``, so results.csv and summary.json hold its plain name.

Then per-mode aggregates (the metrics table, ``assistant.ledger.metrics``) and the
adapter's break-even against prompt mode, computed from the measured rows;
``assistant.evaluation.report`` adds the verdict and writes the files.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.answering.modes import REPORT_ORDER, Mode, parse_list
from assistant.errors import StrataError
from assistant.evaluation.partial import (
    Interrupted,
    OnPartial,
    PartialWriter,
    questions_digest,
    saved_part,
)
from assistant.jsonl import read_objects
from assistant.ledger.metrics import summarise
from assistant.text import (  # DECLINE_PHRASES, contains, declines: re-exported
    DECLINE_PHRASES,  # noqa: F401
    contains,
    declines,
)

if TYPE_CHECKING:
    from assistant.models.generation import SamplingParams
    from assistant.retrieval.embeddings import SentenceEmbedder
    from assistant.services import Services

log = logging.getLogger(__name__)
EVAL_MODES = REPORT_ORDER  # the report's row order
Progress = Callable[[int, int, dict], None]  # (answers done, answers in all, the row)


@dataclass(frozen=True)
class Question:
    """One line of a questions file (see knowledge/README.md)."""

    question: str
    answer: str
    must_contain: tuple[str, ...]
    out_of_scope: bool
    fact_id: str
    line: int


# --- the questions file -------------------------------------------------------------
def load_questions(path: Path | str, limit: int | None = None) -> list[Question]:
    """Parse a JSONL questions file; errors name the file and line, so they can be fixed."""
    path = Path(path)
    if not path.is_file():
        raise StrataError(f"questions file not found: {path}")
    questions = [_question(path, n, row) for n, row in read_objects(path)]
    if not questions:
        raise StrataError(f"{path}: no questions (expected one JSON object per line)")
    if limit is not None and limit < 1:
        raise StrataError(f"--limit must be at least 1, not {limit}")
    return questions[:limit] if limit else questions


def _question(path: Path, number: int, row: dict[str, Any]) -> Question:
    where = f"{path}:{number}"
    question, answer = row.get("question"), row.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise StrataError(f"{where}: 'question' must be a non-empty string")
    if not isinstance(answer, str):
        raise StrataError(f"{where}: 'answer' (the reference answer) must be a string")
    must = row.get("must_contain")
    if not isinstance(must, list) or not all(isinstance(m, str) and m.strip() for m in must):
        raise StrataError(f"{where}: 'must_contain' must be a list of non-empty strings")
    out_of_scope = row.get("out_of_scope", False)
    if not isinstance(out_of_scope, bool):
        raise StrataError(f"{where}: 'out_of_scope' must be true or false")
    return Question(question.strip(), answer, tuple(must), out_of_scope,
                    str(row.get("fact_id") or f"line-{number}"), number)


def parse_modes(modes: str | Iterable[str]) -> list[Mode]:
    """'base,prompt' or a list -> known modes in the given order, without repeats."""
    return parse_list(modes)


def adapter_for(mode: Mode, adapter: str | None) -> str | None:
    """The adapter an answer in ``mode`` is asked with: the adapter modes use it, and auto
    may route to one of them."""
    return adapter if mode.uses_adapter or mode is Mode.AUTO else None


# --- scores ---------------------------------------------------------------------------
def fact_recall(text: str, must_contain: Sequence[str]) -> float | None:
    """Share of the required strings present in ``text``; None when nothing is required."""
    if not must_contain:
        return None
    return sum(contains(text, m) for m in must_contain) / len(must_contain)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


# --- answering --------------------------------------------------------------------------
def resolve_adapter(services: Services, modes: Sequence[Mode], adapter: str | None,
                    questions_path: Path | str) -> str | None:
    """The one adapter the adapter modes are judged with (break-even needs a single one).

    Explicit name, else the adapter named like the questions' domain
    (knowledge/<domain>/qa/... or the synthesized <data_dir>/synth/<domain>/...), else the
    only usable adapter.
    """
    if adapter:
        services.adapters.check(adapter)  # AdapterError: unknown, unsafe or for another base
        return adapter
    if not any(m.uses_adapter for m in modes):
        return None  # auto alone: the router picks per question, as in the app
    usable = [info.name for info in services.adapters.list() if info.ok]
    folder = Path(questions_path).resolve().parent  # knowledge/<d>/qa/ or <data>/synth/<d>/
    for domain in (folder.parent.name, folder.name):
        if domain in usable:
            return domain
    if len(usable) == 1:
        return usable[0]
    if not usable:
        raise StrataError("modes adapter/layered need an adapter: train one with "
                          "`assistant train`, or leave them out of --modes")
    raise StrataError(f"several adapters ({', '.join(usable)}): choose one with --adapter")


def greedy_params(services: Services, max_new_tokens: int) -> SamplingParams:
    """The settings' sampling made greedy; from settings, so no local model is built."""
    from assistant.models.generation import SamplingParams

    return SamplingParams.from_settings(services.settings).with_(
        max_new_tokens=max_new_tokens, temperature=0.0)


def warm_up(services: Services, adapter: str | None, params: SamplingParams) -> None:
    """Load model, adapter, embedder and store before timing, outside the ledger.

    Otherwise the first answer of each mode pays one-off loading and skews its latency.
    Generation goes through the configured backend (a remote server loads its adapter on
    the first request). A local adapter loads before the first forward pass: bitsandbytes
    repacks NF4 weights for its CPU kernel on the first forward, and a LoRA injected after
    that corrupts the base (garbage in every mode; seen with peft 0.21 / bitsandbytes 0.50).
    """
    if adapter and services.engine.engine == "local":
        services.adapters.load(adapter)
    services.store.search("warm up", query_embedding=services.embedder.embed_query("warm up"))
    hello = [{"role": "user", "content": "Hello"}]
    for name in (None, adapter) if adapter else (None,):
        services.backend.generate(hello, params.with_(max_new_tokens=1), adapter=name)


def answer_all(services: Services, questions: Sequence[Question],
               modes: str | Iterable[str], adapter: str | None, params: SamplingParams,
               session_id: str, progress: Progress | None = None, show_bar: bool = True,
               domains: list[str] | None = None,
               answered: Mapping[tuple[int, str], dict[str, Any]] | None = None,
               on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """One row per question x mode, question by question; ``modes``: Modes or their names
    (parse_modes); ``domains`` limits retrieval (None: every domain). ``answered``: rows
    already scored by an interrupted run, keyed by (index, mode), kept instead of asked;
    ``on_row`` sees each new row as soon as it is scored (the partial file).

    Modes alternate per question rather than run in blocks, so load from other processes
    on a shared machine falls on every mode alike instead of on whichever ran then.
    """
    from tqdm import tqdm

    chosen = parse_modes(modes)
    total = len(questions) * len(chosen)
    answered = answered or {}
    rows: list[dict[str, Any]] = []
    kept = sum((i, str(m)) in answered for i in range(len(questions)) for m in chosen)
    with tqdm(total=total, initial=kept, desc="eval", unit="answer",
              disable=not show_bar) as bar:
        for index, q in enumerate(questions):
            for mode in chosen:
                saved = answered.get((index, str(mode)))
                if saved is not None:
                    rows.append({**saved, "mode": mode})
                    continue
                rows.append(_answer_row(services, index, q, mode, adapter, params, session_id,
                                        domains))
                if on_row:
                    on_row(rows[-1])
                bar.set_postfix(mode=mode, refresh=False)
                bar.update()
                if progress:
                    progress(len(rows), total, rows[-1])
    add_similarity(services.embedder, rows)
    return rows


def _answer_row(services: Services, index: int, q: Question, mode: Mode, adapter: str | None,
                params: SamplingParams, session_id: str,
                domains: list[str] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "index": index, "line": q.line, "fact_id": q.fact_id, "question": q.question,
        "mode": mode, "out_of_scope": q.out_of_scope, "reference": q.answer,
        "must_contain": "|".join(q.must_contain), "error": None,
    }
    try:
        a = services.pipeline.ask(q.question, mode=mode, adapter=adapter_for(mode, adapter),
                                  session_id=session_id, params=params, domains=domains)
    except Exception as exc:  # the pipeline recorded it in the ledger; one bad answer
        log.warning("question %d in %s mode failed: %s", index + 1, mode, exc)  # ends no run
        message = str(exc) if isinstance(exc, StrataError) else f"{type(exc).__name__}: {exc}"
        return {**row, "error": message, "answer": ""}
    return {
        **row, "chosen_mode": a.mode, "adapter": a.adapter, "answer": a.text,
        "recall": None if q.out_of_scope else fact_recall(a.text, q.must_contain),
        "similarity": None, "declined": declines(a.text), "grounding": a.grounding,
        # the model's own text scored too, so quoting's share of the recall stays visible
        "generated_recall": None if q.out_of_scope else fact_recall(
            a.generated if a.generated is not None else a.text, q.must_contain),
        "prompt_tokens": a.prompt_tokens, "rerank_tokens": a.rerank_tokens,
        "completion_tokens": a.completion_tokens,
        "ttft_ms": a.ttft_ms, "total_ms": a.total_ms, "tokens_per_s": a.tokens_per_s,
        "cost_usd": a.cost_usd, "token_cost_usd": a.token_cost_usd,
        "compute_cost_usd": a.compute_cost_usd, "finish_reason": a.finish_reason,
        "ledger_id": a.ledger_id,
    }


def add_similarity(embedder: SentenceEmbedder, rows: list[dict[str, Any]]) -> None:
    """Fill ``similarity`` for answered rows: one batched embedding call, after timing."""
    answered = [r for r in rows if not r["error"]]
    if not answered:
        return
    references = sorted({r["reference"] for r in answered})
    vectors = embedder.embed_documents([r["answer"] or " " for r in answered] + references)
    by_reference = dict(zip(references, vectors[len(answered):]))
    for row, vector in zip(answered, vectors):
        row["similarity"] = round(cosine(vector, by_reference[row["reference"]]), 4)


# --- aggregates and break-even (the verdict is report.verdict) ----------------------------
def summarise_mode(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Every metric (``assistant.ledger.metrics``) over the rows of one mode; errors are
    counted, not scored."""
    return summarise(rows, scope="eval")


def training_cost_of(services: Services, adapter: str) -> tuple[float | None, str]:
    """The adapter's one-time cost (USD) and where it came from.

    The ledger's trainings table first (every run under the name: what was really spent),
    else the adapter's card.json (a cost, or a duration priced by the cost model).
    """
    from assistant.ledger import costs
    from assistant.models.adapter_folder import Card

    if services.ledger.trainings(adapter):
        return services.ledger.training_cost(adapter), "ledger trainings table"
    card = Card.read(services.settings.adapters_dir / adapter)
    if card is not None and card.cost_usd is not None:
        return float(card.cost_usd), "card.json cost_usd"
    if card is not None and card.seconds is not None:
        usd = costs.training_cost(card.seconds, services.settings)
        return usd, "card.json seconds x hourly rate"
    return None, "unknown: no ledger training row and no cost or duration in card.json"


def break_even(per_mode: dict[str, dict[str, Any]], training_usd: float | None,
               source: str = "") -> dict[str, Any]:
    """Answers after which the adapter's training is paid back by cheaper answers than prompt mode.

    questions = training cost / (prompt cost per answer - adapter cost per answer);
    "never" when adapter mode is not cheaper per answer; None when it cannot be computed.
    """
    prompt = (per_mode.get("prompt") or {}).get("mean_cost_usd")
    adapter = (per_mode.get("adapter") or {}).get("mean_cost_usd")
    result: dict[str, Any] = {
        "training_cost_usd": training_usd, "training_cost_source": source,
        "prompt_cost_per_answer_usd": prompt, "adapter_cost_per_answer_usd": adapter,
        "saving_per_answer_usd": None, "questions": None,
    }
    if prompt is None or adapter is None:
        result["text"] = "Break-even needs both prompt and adapter modes in the run."
        return result
    saving = prompt - adapter
    result["saving_per_answer_usd"] = saving
    if saving <= 0:
        result["questions"] = "never"
        result["text"] = (f"Never: an adapter answer costs ${adapter:.7f}, not less than a prompt "
                          f"answer (${prompt:.7f}), so training is never paid back.")
    elif training_usd is None:
        result["text"] = (f"Adapter answers save ${saving:.7f} each, but the training cost is "
                          f"unknown ({source}).")
    else:
        result["questions"] = math.ceil(round(training_usd / saving, 6))  # 100.0000001 is 100
        result["text"] = (f"Training cost ${training_usd:.6f} ({source}); each adapter answer "
                          f"saves ${saving:.7f} over prompt mode, so the adapter pays for itself "
                          f"after {result['questions']:,} questions.")
    return result


# --- the whole run ------------------------------------------------------------------------
def evaluate(services: Services, questions_path: Path | str, out_dir: Path | str,
             modes: str | Sequence[str] = EVAL_MODES, adapter: str | None = None,
             limit: int | None = None, max_new_tokens: int = 64, update_card: bool = True,
             progress: Progress | None = None, show_bar: bool = True,
             questions_note: str | None = None,
             domains: list[str] | None = None,
             on_partial: OnPartial = "restart") -> dict[str, Any]:
    """Answer, score, summarise and write results.csv, summary.json, report.md and plots.

    Returns the summary (as written to summary.json). Cheap checks (file, modes) come
    before anything loads a model, so a typo fails in milliseconds. ``questions_note`` says
    where the questions came from (`assistant eval --domain D`: synthesized ones); the
    report prints it under its title. ``domains`` limits retrieval to those domains' documents
    (a domain's own questions need no other; in the app, nobody else's uploads may answer).
    Each scored row is saved at once in ``out_dir``'s partial file (``partial.py``);
    ``on_partial`` says what to do with one left by an interrupted run: resume it, refuse
    (the command without --resume), or start again. Ctrl-C raises ``Interrupted``.
    """
    from assistant.evaluation import report
    from assistant.ledger import costs

    questions = load_questions(questions_path, limit)
    chosen = parse_modes(modes)
    if max_new_tokens < 1:
        raise StrataError(f"--max-new-tokens must be at least 1, not {max_new_tokens}")
    adapter = resolve_adapter(services, chosen, adapter, questions_path)
    out = Path(out_dir)
    started = datetime.now(UTC)
    header: dict[str, Any] = {  # what makes the run: a resume must match it
        "questions_file": str(questions_path), "questions_sha256": questions_digest(questions_path),
        "limit": limit, "modes": chosen, "adapter": adapter, "max_new_tokens": max_new_tokens,
        "domains": domains, "base_model": services.settings.base_model,
        "engine": services.engine.engine,
        # a random tail: two evaluations started in the same second (one data folder, two
        # shells) would otherwise share their ledger session and mix their rows
        "session_id": f"eval-{started.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}",
        "date": started.isoformat(timespec="seconds"),
    }
    answered, before = saved_part(out, header, on_partial, len(questions) * len(chosen))
    params = greedy_params(services, max_new_tokens)
    warm_up(services, adapter, params)
    writer = PartialWriter(out, header, list(answered.values()), before)
    clock = time.perf_counter()
    try:
        rows = answer_all(services, questions, chosen, adapter, params, header["session_id"],
                          progress, show_bar, domains, answered,
                          lambda row: writer.add(row, before + time.perf_counter() - clock))
        # a Ctrl-C while the files are written leaves every answer saved too
        per_mode: dict[str, dict[str, Any]] = {  # keyed by Mode: its name in summary.json
            m: summarise_mode([r for r in rows if r["mode"] == m]) for m in chosen}
        training = (training_cost_of(services, adapter) if adapter
                    else (None, "no adapter in this run"))
        summary = {
            "questions_file": str(questions_path), "n_questions": len(questions),
            "questions_note": questions_note,  # where they came from (synthesized ones)
            "n_in_scope": sum(not q.out_of_scope for q in questions),
            "n_out_of_scope": sum(q.out_of_scope for q in questions),
            "modes": chosen, "adapter": adapter, "session_id": header["session_id"],
            "domains": domains, "date": header["date"],
            "seconds": round(before + time.perf_counter() - clock, 1),
            "base_model": services.settings.base_model,
            "quant": services.backend.quantization or services.base.quant,  # what answered
            "engine": services.engine.engine,  # what answered: llamacpp, local or openai
            "max_new_tokens": max_new_tokens, "decoding": "greedy (temperature 0)",
            "prices": costs.describe(services.settings),
            "per_mode": per_mode, "break_even": break_even(per_mode, *training),
            "verdict": report.verdict(per_mode),
            "human_preference": report.human_preference(services.votes.battles(), adapter),
        }
        if update_card and adapter and any(adapter_for(m, adapter) for m in chosen):
            summary["card"] = report.update_card(services.settings.adapters_dir / adapter,
                                                 summary)
        summary["files"] = report.write_all(out, rows, summary)
    except KeyboardInterrupt:
        raise Interrupted(writer.count, len(questions) * len(chosen), writer.path) from None
    finally:
        writer.close()
    writer.finish()
    return summary

