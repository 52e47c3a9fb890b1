"""`assistant eval --conversations FILE`: follow-up questions scored with and without the
conversation they continue.

A follow-up ("How many of them can one household claim?") is only answerable from the
earlier turns, so each one is asked three ways, in every mode, greedy:

* ``with_history``: as a chat would send it, after the conversation so far, whose assistant
  turns are the model's own earlier answers (so an early mistake carries on, as in use);
* ``without_history``: the follow-up alone, what Strata did before it kept conversations;
* ``standalone``: the same fact asked on its own (the turn's ``standalone`` rewording),
  the ceiling the history should bring the follow-up close to.

A first turn is asked once (way ``first``). Fact recall is ``fact_recall`` of the questions
eval; an out-of-scope turn (a topic change to a question the documents cannot answer)
scores its decline rate instead. The standalone-query step (``conversation.standalone``)
is timed per follow-up, beside the answers' router and retrieval times.

The file: one JSON object per line (blank lines skipped), for example::

    {"id": "c01", "turns": [
      {"question": "What rebate do you give for a dual-flush toilet?",
       "must_contain": ["45.75"], "source": "leak-policy-and-conservation.md"},
      {"question": "And for a rainwater harvesting system?", "must_contain": ["190"],
       "standalone": "What rebate do you give for a rainwater harvesting system?"},
      {"question": "Thanks. Unrelated: what is the capital of Japan?", "must_contain": [],
       "standalone": "What is the capital of Japan?", "out_of_scope": true}]}

``id`` (optional, default ``line-N``) names the conversation; ``turns`` holds at least two
user turns: ``question``; ``must_contain``, strings a right answer holds, each exactly as
in the documents (empty only when ``out_of_scope``); ``standalone``, required on every
turn after the first; ``out_of_scope`` (default false); ``source`` (optional, the
document stating the fact). Every refusal names the file, line and turn.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.answering import conversation
from assistant.answering.modes import Mode
from assistant.errors import StrataError
from assistant.evaluation.run import (
    adapter_for,
    fact_recall,
    greedy_params,
    parse_modes,
    resolve_adapter,
    warm_up,
)
from assistant.jsonl import read_objects
from assistant.ledger.metrics import mean, percentile
from assistant.text import declines

if TYPE_CHECKING:
    from assistant.answering.answer import Answer
    from assistant.answering.pipeline import Pipeline
    from assistant.models.generation import SamplingParams
    from assistant.services import Services

log = logging.getLogger(__name__)
WAYS = ("first", "with_history", "without_history", "standalone")
FOLLOW_UP_WAYS = WAYS[1:]
# The targets for follow-ups asked with the history, per mode.
WITHIN_STANDALONE = 0.10  # recall at most this far below the standalone rewordings
ABOVE_WITHOUT = 0.20  # and at least this far above the follow-ups asked alone
Progress = Callable[[int, int, dict], None]  # (answers done, answers in all, the row)
Asking = Callable[..., "Answer"]  # the pipeline's ask, its mode and options bound


@dataclass(frozen=True)
class Turn:
    """One user turn of a conversation (see the module docstring for the fields)."""

    question: str
    must_contain: tuple[str, ...]
    standalone: str | None
    out_of_scope: bool


@dataclass(frozen=True)
class Conversation:
    id: str
    turns: tuple[Turn, ...]
    line: int


# --- the file ---------------------------------------------------------------------------
def load_conversations(path: Path | str) -> list[Conversation]:
    """Parse a conversations file; every refusal names the file, line and turn to fix."""
    path = Path(path)
    conversations = [_conversation(f"{path}:{n}", n, row) for n, row in read_objects(path)]
    if not conversations:
        raise StrataError(f"{path}: no conversations (expected one JSON object per line)")
    seen: dict[str, int] = {}
    for conv in conversations:
        if conv.id in seen:
            raise StrataError(f"{path}:{conv.line}: id {conv.id!r} repeats line {seen[conv.id]}")
        seen[conv.id] = conv.line
    return conversations


def _conversation(where: str, number: int, row: dict[str, Any]) -> Conversation:
    ident = row.get("id", f"line-{number}")
    if not isinstance(ident, str) or not ident.strip():
        raise StrataError(f"{where}: 'id' must be a non-empty string")
    turns = row.get("turns")
    if not isinstance(turns, list) or len(turns) < 2:
        raise StrataError(f"{where}: 'turns' must be a list of at least two user turns")
    parsed = tuple(_turn(f"{where}: turn {i}", turn, i > 1)
                   for i, turn in enumerate(turns, start=1))
    return Conversation(ident.strip(), parsed, number)


def _turn(where: str, row: Any, follow_up: bool) -> Turn:
    if not isinstance(row, dict):
        raise StrataError(f"{where}: expected a JSON object")
    question, standalone = row.get("question"), row.get("standalone")
    if not isinstance(question, str) or not question.strip():
        raise StrataError(f"{where}: 'question' must be a non-empty string")
    out_of_scope = row.get("out_of_scope", False)
    if not isinstance(out_of_scope, bool):
        raise StrataError(f"{where}: 'out_of_scope' must be true or false")
    must = row.get("must_contain")
    if not isinstance(must, list) or not all(isinstance(m, str) and m.strip() for m in must):
        raise StrataError(f"{where}: 'must_contain' must be a list of non-empty strings")
    if not must and not out_of_scope:
        raise StrataError(f"{where}: 'must_contain' is empty but the turn is not out_of_scope")
    if follow_up and (not isinstance(standalone, str) or not standalone.strip()):
        raise StrataError(f"{where}: a follow-up needs 'standalone', the same question "
                          "asked on its own")
    if standalone is not None and not isinstance(standalone, str):
        raise StrataError(f"{where}: 'standalone' must be a string")
    return Turn(question.strip(), tuple(m.strip() for m in must),
                standalone.strip() if standalone else None, out_of_scope)


def count_answers(conversations: Sequence[Conversation], modes: Sequence[Mode]) -> int:
    """Answers a run gives: a first turn once, every later turn three ways, per mode."""
    per_mode = sum(1 + len(FOLLOW_UP_WAYS) * (len(c.turns) - 1) for c in conversations)
    return per_mode * len(modes)


# --- answering ----------------------------------------------------------------------------
def answer_conversations(pipeline: Pipeline, conversations: Sequence[Conversation],
                         modes: str | Iterable[str], adapter: str | None,
                         params: SamplingParams, session_id: str,
                         progress: Progress | None = None) -> list[dict[str, Any]]:
    """One row per turn, way and mode, through ``pipeline.ask`` (one ledger row each);
    ``modes``: Modes or their names (parse_modes).

    Modes alternate per conversation, as the questions eval alternates them per question,
    so load from other processes falls on every mode alike.
    """
    chosen = parse_modes(modes)
    total = count_answers(conversations, chosen)
    rows: list[dict[str, Any]] = []

    def keep(row: dict[str, Any]) -> None:
        rows.append(row)
        if progress:
            progress(len(rows), total, row)

    for conv in conversations:
        for mode in chosen:
            asking = partial(pipeline.ask, mode=mode, adapter=adapter_for(mode, adapter),
                             session_id=session_id, params=params)
            _converse(asking, conv, mode, keep)
    return rows


def _converse(asking: Asking, conv: Conversation, mode: Mode,
              keep: Callable[[dict], None]) -> None:
    """Every turn of ``conv`` in ``mode`` (``asking``: the pipeline's ask in that mode);
    the history carries the answers given with it."""

    def ask(question: str, history: list[conversation.Turn], way: str, turn: int,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
        row = {"conversation": conv.id, "line": conv.line, "turn": turn, "way": way,
               "mode": mode, "question": question, **(extra or {})}
        return _ask(asking, row, conv.turns[turn - 1], history)

    history: list[conversation.Turn] = []
    for number, turn in enumerate(conv.turns, start=1):
        if number == 1:
            said = ask(turn.question, [], "first", number)
            keep(said)
        else:
            started = time.perf_counter()
            plan = conversation.standalone(turn.question, history)
            step_ms = (time.perf_counter() - started) * 1000
            said = ask(turn.question, history, "with_history", number,
                       {"standalone_ms": round(step_ms, 4), "standalone_kind": plan.kind})
            keep(said)
            keep(ask(turn.question, [], "without_history", number))
            keep(ask(turn.standalone or turn.question, [], "standalone", number))
        history += [{"role": "user", "content": turn.question},
                    {"role": "assistant", "content": said["answer"]}]


def _ask(asking: Asking, row: dict[str, Any], turn: Turn,
         history: list[conversation.Turn]) -> dict[str, Any]:
    """One answer, scored; a failure becomes a row with its error (the run goes on)."""
    row = {**row, "must_contain": "|".join(turn.must_contain),
           "out_of_scope": turn.out_of_scope, "error": None}
    try:
        a = asking(row["question"], history=list(history) or None)
    except Exception as exc:  # the pipeline recorded it in the ledger; one bad answer
        log.warning("%s turn %d (%s, %s) failed: %s", row["conversation"], row["turn"],
                    row["way"], row["mode"], exc)  # ends no run
        message = str(exc) if isinstance(exc, StrataError) else f"{type(exc).__name__}: {exc}"
        return {**row, "error": message, "answer": "", "recall": None, "declined": None}
    generated = a.generated if a.generated is not None else a.text
    return {
        **row, "chosen_mode": a.mode, "adapter": a.adapter, "answer": a.text,
        "recall": None if turn.out_of_scope else fact_recall(a.text, turn.must_contain),
        "generated_recall": None if turn.out_of_scope else fact_recall(
            generated, turn.must_contain),
        "declined": declines(a.text), "grounding": a.grounding,
        "standalone_query": a.standalone_query, "history_turns": a.history_turns,
        "router_ms": a.router_ms, "retrieval_ms": a.retrieval_ms, "total_ms": a.total_ms,
        "prompt_tokens": a.prompt_tokens, "completion_tokens": a.completion_tokens,
        "ledger_id": a.ledger_id,
    }


# --- the summary -------------------------------------------------------------------------
def summarise(rows: Sequence[dict[str, Any]], modes: Sequence[Mode]) -> dict[str, Any]:
    """Per mode: each way's recall and timings, and the targets; then the cost of
    the standalone-query step over every follow-up."""
    per_mode = {}
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode]
        ways = {way: _way([r for r in mine if r["way"] == way]) for way in WAYS}
        per_mode[mode] = {"ways": ways, "targets": targets(ways), "added_ms": _added(mine)}
    steps = [r["standalone_ms"] for r in rows if r.get("standalone_ms") is not None]
    return {"per_mode": per_mode, "standalone_step_ms": _spread(steps, 4)}


def _way(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    answered = [r for r in rows if not r["error"]]
    scoped = [r for r in answered if not r["out_of_scope"]]
    outside = [r for r in answered if r["out_of_scope"]]
    kinds = [r["standalone_kind"] for r in scoped if r.get("standalone_kind")]
    changes = [r["standalone_kind"] for r in outside if r.get("standalone_kind")]
    return {
        "n": len(scoped), "errors": len(rows) - len(answered),
        "recall": _round(mean(r["recall"] for r in scoped)),
        "generated_recall": _round(mean(r["generated_recall"] for r in scoped)),
        "quoted_rate": _round(mean(float(str(r["grounding"]).startswith("quoted"))
                                   for r in scoped)),
        "n_out_of_scope": len(outside),
        "decline_rate": _round(mean(float(r["declined"]) for r in outside)),
        # with_history only: how often the rule searched with the earlier turns
        "searched_as_follow_up": _round(mean(float(k == "follow-up") for k in kinds)),
        "topic_change_seen": _round(mean(float(k == "topic change") for k in changes)),
        "retrieval_ms": _spread([r["retrieval_ms"] for r in answered], 1),
        "router_ms": _spread([r["router_ms"] for r in answered], 1),
        "total_ms": _spread([r["total_ms"] for r in answered], 1),
    }


def targets(ways: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Follow-ups with the history against the standalone rewordings and against the
    follow-ups asked alone (None when a way has no scored answer)."""
    with_, without, alone = (ways[w]["recall"] for w in FOLLOW_UP_WAYS)
    if with_ is None or without is None or alone is None:
        return {"met": None, "standalone_minus_with": None, "with_minus_without": None}
    below, gain = round(alone - with_, 4), round(with_ - without, 4)
    near, above = below <= WITHIN_STANDALONE, gain >= ABOVE_WITHOUT
    return {"standalone_minus_with": below, "within_standalone": near,
            "with_minus_without": gain, "above_without": above, "met": near and above}


def _added(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What the history adds before the answer starts, per follow-up: the standalone step
    plus the retrieval time of its longer query over the same follow-up searched alone
    (``retrieval_ms`` covers embedding, search and sentence ranking in every mode)."""
    alone = {(r["conversation"], r["turn"]): r for r in rows
             if r["way"] == "without_history" and not r["error"]}
    added = [r["standalone_ms"] + r["retrieval_ms"] - alone[key]["retrieval_ms"]
             for r in rows if r["way"] == "with_history" and not r["error"]
             and (key := (r["conversation"], r["turn"])) in alone]
    return _spread(added, 1)


def _spread(values: Sequence[float], digits: int) -> dict[str, Any]:
    return {"n": len(values), "p50": _round(percentile(values, 50), digits),
            "p95": _round(percentile(values, 95), digits),
            "max": _round(max(values), digits) if values else None}


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


# --- the whole run ------------------------------------------------------------------------
def evaluate_conversations(services: Services, path: Path | str, out_dir: Path | str,
                           modes: str | Sequence[str] = ("prompt", "layered"),
                           adapter: str | None = None, max_new_tokens: int = 64,
                           show_bar: bool = True) -> dict[str, Any]:
    """Answer every turn three ways in every mode, greedy; write conversations.json (the
    summary and every row) and conversations.md into ``out_dir``; return the summary.

    The file and the modes are checked before anything loads a model.
    """
    from tqdm import tqdm

    conversations = load_conversations(path)
    chosen = parse_modes(modes)
    if max_new_tokens < 1:
        raise StrataError(f"--max-new-tokens must be at least 1, not {max_new_tokens}")
    adapter = resolve_adapter(services, chosen, adapter, path)
    started = datetime.now(UTC)
    session_id = f"eval-conversations-{started.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
    params = greedy_params(services, max_new_tokens)
    warm_up(services, adapter, params)
    clock = time.perf_counter()
    with tqdm(total=count_answers(conversations, chosen), desc="conversations",
              unit="answer", disable=not show_bar) as bar:
        rows = answer_conversations(services.pipeline, conversations, chosen, adapter, params,
                                    session_id, lambda done, total, row: bar.update())
    summary = {
        "conversations_file": str(path), "n_conversations": len(conversations),
        "n_follow_ups": sum(len(c.turns) - 1 for c in conversations),
        "modes": chosen, "adapter": adapter, "session_id": session_id,
        "date": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - clock, 1),
        "base_model": services.settings.base_model,
        "quant": services.backend.quantization or services.base.quant,  # what answered
        "max_new_tokens": max_new_tokens, "decoding": "greedy (temperature 0)",
        "history_tokens": services.settings.history_tokens,
        **summarise(rows, chosen),
    }
    summary["files"] = write(Path(out_dir), rows, summary)
    return summary


def write(out_dir: Path, rows: Sequence[dict[str, Any]], summary: dict[str, Any]
          ) -> dict[str, str]:
    """conversations.json (summary and rows) and conversations.md; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": out_dir / "conversations.json", "markdown": out_dir / "conversations.md"}
    named = {k: str(v) for k, v in files.items()}
    files["json"].write_text(json.dumps({**summary, "files": named, "rows": list(rows)},
                                        indent=2, default=str) + "\n")
    files["markdown"].write_text(markdown(summary) + "\n")
    return named


def markdown(summary: dict[str, Any]) -> str:
    """Recall per mode and way, the targets, the topic changes and the step's time."""
    lines = [
        (f"{summary['n_conversations']} conversations, {summary['n_follow_ups']} follow-ups "
         f"({summary['conversations_file']}); {summary['base_model']} {summary['quant']}, "
         f"{summary['decoding']}, {summary['max_new_tokens']} new tokens, history budget "
         f"{summary['history_tokens']} tokens."), "",
        ("| mode | first turns | follow-ups with history | without history | standalone "
         "rewording | with - without (>= 0.20) | standalone - with (<= 0.10) | "
         "out-of-scope declined (with / without) |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, m in summary["per_mode"].items():
        w, t = m["ways"], m["targets"]
        verdict = {True: "met", False: "**missed**", None: "n/a"}
        lines.append(
            f"| {mode} | {_recall(w['first'])} | {_recall(w['with_history'])} | "
            f"{_recall(w['without_history'])} | {_recall(w['standalone'])} | "
            f"{_fmt(t['with_minus_without'], sign=True)} "
            f"({verdict[t.get('above_without')]}) | {_fmt(t['standalone_minus_with'], sign=True)} "
            f"({verdict[t.get('within_standalone')]}) | "
            f"{_fmt(w['with_history']['decline_rate'])} / "
            f"{_fmt(w['without_history']['decline_rate'])} |")
    lines += ["", ("Fact recall over the in-scope turns. With history, the follow-up comes "
                   "after the conversation so far, the model's own earlier answers included. "
                   + CHECKED_NOTE)]
    step = summary["standalone_step_ms"]
    lines += ["", (f"Standalone-query step (`conversation.standalone`, {step['n']} "
                   f"follow-ups): p50 {step['p50']} ms, p95 {step['p95']} ms."), ""]
    for mode, m in summary["per_mode"].items():
        wh = m["ways"]["with_history"]
        lines.append(
            f"- {mode}: the rule searched {_fmt(wh['searched_as_follow_up'])} of the in-scope "
            f"follow-ups with the earlier turns and saw {_fmt(wh['topic_change_seen'])} of the "
            "topic changes.")
    lines += ["", "| mode | way | router ms p50 / p95 | retrieval ms p50 / p95 |",
              "|---|---|---|---|"]
    for mode, m in summary["per_mode"].items():
        for way, w in m["ways"].items():
            lines.append(f"| {mode} | {way} | {w['router_ms']['p50']} / {w['router_ms']['p95']} "
                         f"| {w['retrieval_ms']['p50']} / {w['retrieval_ms']['p95']} |")
    lines += ["", ("Retrieval includes sentence ranking and re-ranking. One answer per way here; "
                   "what the history adds, measured in turn and repeated: "
                   "`python -m bench.run conversations`.")]
    return "\n".join(lines)


CHECKED_NOTE = ("Where answers were replaced by quotes of the documents (the answer check), "
                "the recall of the model's own words and the share quoted follow the recall "
                "of what was shown.")


def _recall(way: dict[str, Any]) -> str:
    """A way's fact recall as shown, with its own-words recall and quoted share where the
    answer check replaced any answer."""
    quoted = way.get("quoted_rate")
    if not quoted:
        return _fmt(way["recall"])
    return f"{_fmt(way['recall'])} (own {_fmt(way.get('generated_recall'))}; {quoted:.0%} quoted)"


def _fmt(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f}" if sign else f"{value:.2f}"
