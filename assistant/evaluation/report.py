"""The files an evaluation leaves behind: results.csv, summary.json, report.md, PNG plots,
and the scores written back into the adapter's card.

Kept apart from ``assistant.evaluation.run`` so the numbers and their presentation change
independently; everything here renders what the summary already holds, nothing is typed.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.evaluation import plots
from assistant.evaluation.plots import PLOTS
from assistant.ledger.metrics import METRICS, card_figures

CSV_COLUMNS = [
    "index", "line", "fact_id", "mode", "chosen_mode", "adapter", "out_of_scope", "question",
    "answer", "reference", "must_contain", "recall", "similarity", "declined", "grounding",
    "generated_recall",
    "prompt_tokens", "rerank_tokens", "completion_tokens", "ttft_ms", "total_ms", "tokens_per_s",
    "cost_usd",
    "token_cost_usd", "compute_cost_usd", "finish_reason", "ledger_id", "error",
]


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# Said under every table with a fact recall column, so no reader takes the shown answers'
# recall for the model's own.
RECALL_LEGEND = (
    "Fact recall scores the answers as shown; in prompt and layered mode (and auto, routed "
    "there) the answer check replaces an answer its context does not support by quoted "
    "sentences of the documents, so *own words* scores the model's own answers and *quoted* "
    "is the share replaced (- where no answer is checked).")


ENGINES = {"llamacpp": "llama.cpp from the base model's GGUF weights",
           "local": "the local torch generator", "openai": "an OpenAI-compatible server"}


def engine_note(summary: dict[str, Any]) -> str:
    """Which engine wrote the answers, as a clause after the model's name ('' for a
    summary written before the engine was recorded)."""
    engine = summary.get("engine")
    if not engine:
        return ""
    return f", answered by {ENGINES.get(engine, engine)} (engine `{engine}`)"


def markdown_table(summary: dict[str, Any]) -> str:
    """One row per mode: accuracy (as shown, in the model's own words, quoted share),
    declines, tokens, latency and cost (for the docs and report)."""
    head = ("| mode | answers | fact recall | own words | quoted | similarity | "
            "declines out-of-scope | tokens in | tokens out | TTFT p50 / p95 ms | "
            "total p50 / p95 ms | $ per 1k answers |")
    lines = [head, "|---|" + "---:|" * 11]
    for mode, s in summary["per_mode"].items():
        per_k = None if s["mean_cost_usd"] is None else s["mean_cost_usd"] * 1000
        lines.append(
            f"| {mode} | {s['count']}" + (f" ({s['errors']} failed)" if s["errors"] else "")
            + f" | {_fmt(s['recall'], '.2f')} | {_fmt(s.get('generated_recall'), '.2f')}"
            f" | {_fmt(s.get('quoted_rate'), '.0%')} | {_fmt(s['similarity'], '.2f')}"
            f" | {_fmt(s['decline_rate'], '.0%')} | {_fmt(s['mean_prompt_tokens'], '.0f')}"
            f" | {_fmt(s['mean_completion_tokens'], '.0f')}"
            f" | {_fmt(s['p50_ttft_ms'], '.0f')} / {_fmt(s['p95_ttft_ms'], '.0f')}"
            f" | {_fmt(s['p50_total_ms'], '.0f')} / {_fmt(s['p95_total_ms'], '.0f')}"
            f" | {_fmt(per_k, '.4f')} |"
        )
    return "\n".join(lines)


def _routing_note(summary: dict[str, Any]) -> str:
    auto = summary["per_mode"].get("auto")
    if not auto or not auto["chosen_modes"]:
        return ""
    counts = sorted(auto["chosen_modes"].items(), key=lambda x: -x[1])
    chosen = ", ".join(f"{m} {n}" for m, n in counts)
    return f"\nIn auto mode the router chose: {chosen} (answers per mode).\n"


def _grounding_note(summary: dict[str, Any]) -> str:
    """How often prompt/layered mode showed quotes instead of the model's answer, and what
    each scored."""
    notes = []
    for mode, s in summary["per_mode"].items():
        if s.get("quoted_rate") is None:
            continue
        notes.append(
            f"In {mode} mode {s['quoted_rate']:.0%} of the answers were quotes from the documents: "
            "the model's answer stated a number or name its context lacked, "
            + ("one its best-ranked sentence lacked, copied the worked example's wording, "
               if mode == "prompt" else "")
            + "or stated nothing specific from the context "
            f"(`assistant/answering/grounding.py`). The model's own answers had fact recall "
            f"{_fmt(s.get('generated_recall'), '.2f')}; what was shown, {_fmt(s['recall'], '.2f')}."
        )
    reranked = {m: s["mean_rerank_tokens"] for m, s in summary["per_mode"].items()
                if s.get("mean_rerank_tokens")}
    if reranked:
        notes.append(
            "Besides its prompt, the model read "
            + ", ".join(f"{v:.0f} tokens per {m} answer" for m, v in reranked.items())
            + " to re-rank the context sentences (`assistant/answering/rerank.py`); "
            "the cost columns include them.")
    return "".join(f"\n{n}\n" for n in notes)


def _samples(rows: Sequence[dict[str, Any]], questions: int = 3) -> list[str]:
    """The answers to the first few questions in every mode, so the numbers have faces."""
    picked = sorted({r["index"] for r in rows})[:questions]
    lines = ["| question | mode | answer | recall |", "|---|---|---|---:|"]
    for row in (r for r in rows if r["index"] in picked):
        text = (row["error"] and f"error: {row['error']}") or row["answer"] or ""
        text = re.sub(r"\s+", " ", text)
        text = text if len(text) <= 140 else text[:140] + "..."
        question = row["question"] + (" *(out of scope)*" if row["out_of_scope"] else "")
        recall = _fmt(row.get("recall"), ".2f") if not row["out_of_scope"] else (
            "declined" if row.get("declined") else "answered")
        lines.append(f"| {_cell(question)} | {row['mode']} | {_cell(text)} | {recall} |")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def readme_markdown(summary: dict[str, Any]) -> str:
    """The evaluation block of docs/evaluation.md (and, shortened, the README): what was run,
    the table, the verdict, the break-even."""
    s = summary
    lines = [
        f"{s['n_questions']} questions of `{s['questions_file']}` ({s['n_out_of_scope']} out of "
        f"scope) on `{s['base_model']}` ({s['quant']})"
        + (f" with adapter `{s['adapter']}`" if s["adapter"] else "") + engine_note(s)
        + f", {s['decoding']}, at most {s['max_new_tokens']} new tokens, {s['date'][:10]}"
        + (f"; the run took {s['seconds'] / 60:.1f} min" if s.get("seconds") else "") + ".", "",
        markdown_table(s), "", RECALL_LEGEND, _routing_note(s) + _grounding_note(s),
        *_verdict_lines(s),
        f"- Break-even: {s['break_even']['text']}",
    ]
    return "\n".join(lines) + "\n"


def render_markdown(summary: dict[str, Any], rows: Sequence[dict[str, Any]],
                    plots: dict[str, str]) -> str:
    """report.md: verdict first, then the table, break-even, plots and method."""
    from assistant.text import DECLINE_PHRASES

    s, be, p = summary, summary["break_even"], summary["prices"]
    lines = [
        f"# Evaluation: {', '.join(s['modes'])} on `{s['questions_file']}`", "",
        f"{s['n_questions']} questions ({s['n_in_scope']} in scope, {s['n_out_of_scope']} out of "
        f"scope) x {len(s['modes'])} modes on `{s['base_model']}` ({s['quant']})"
        + (f" with adapter `{s['adapter']}`" if s["adapter"] else "") + engine_note(s)
        + f"; {s['decoding']}, at most {s['max_new_tokens']} new tokens; {s['date']}, "
        f"{s['seconds']:.0f} s. Ledger session `{s['session_id']}`.", "",
        *([s["questions_note"], ""] if s.get("questions_note") else []),
        "## Verdict", "", *_verdict_lines(s),
        "", "## Results per mode", "", markdown_table(s), "", RECALL_LEGEND,
        _routing_note(s) + _grounding_note(s),
        "## Break-even of the adapter", "", be["text"], "",
    ]
    if be.get("questions") is not None:
        lines += [f"Break-even questions = training cost / (prompt cost per answer - adapter cost "
                  f"per answer) = {_fmt(be['training_cost_usd'], '.6f')} / "
                  f"({be['prompt_cost_per_answer_usd']:.7f} - "
                  f"{be['adapter_cost_per_answer_usd']:.7f})"
                  f" = {be['questions']}.", ""]
    lines += human_preference_lines(s.get("human_preference"))
    images = [f"![{PLOTS[name]}]({Path(path).name})" for name, path in plots.items()]
    lines += ["## Plots", "", *images,
              "", "## Sample answers", "", *_samples(rows), "", "## How the numbers are made", "",
              "- Fact recall: share of the question's `must_contain` strings found in the answer "
              "(case-insensitive; a number must not run on into more digits: `23` is not in "
              "`2023`), in-scope questions only.",
              "- Similarity: cosine of answer and reference answer under the knowledge base's "
              "embedder, in-scope questions only.",
              "- Declines: out-of-scope answers containing one of: "
              + ", ".join(f"\"{x}\"" for x in DECLINE_PHRASES) + ".",
              f"- Cost per answer: tokens at ${p['input_usd_per_mtok']}/1M in and "
              f"${p['output_usd_per_mtok']}/1M out, plus wall time at ${p['usd_per_hour']}/h "
              f"({p['hardware']}); assumed prices, see `assistant/ledger/costs.py`.",
              "- Every answer is also a row in the ledger (`assistant stats`), per question in "
              "`results.csv`.", ""]
    return "\n".join(lines)


# --- human preference ---------------------------------------------------------------------
def human_preference(battles: Sequence[dict[str, Any]], adapter: str | None
                     ) -> dict[str, Any] | None:
    """The arena's verdict on the adapter under test: win rates over the battles in which
    one side used it (assistant/ledger/preferences.py); None when there are none."""
    from assistant.ledger.preferences import win_rates
    from assistant.ledger.votes import adapter_of

    if not adapter:
        return None
    mine = [b for b in battles if adapter in (adapter_of(b["a_strategy"]),
                                              adapter_of(b["b_strategy"]))]
    if not mine:
        return None
    return {"adapter": adapter, "battles": len(mine), "win_rates": win_rates(mine)}


def human_preference_lines(preference: dict[str, Any] | None) -> list[str]:
    """report.md's section on what people preferred in the blind arena."""
    if not preference:
        return []
    lines = ["## Human preference", "",
             f"{preference['battles']} blind arena votes in which one side used adapter "
             f"`{preference['adapter']}`; Bradley-Terry ratings (Elo scale) with bootstrap 95% "
             "intervals; ties and \"both bad\" count half.", "",
             "| Strategy | Rating | 95% interval | Won | Lost | Tie | Both bad | Win rate |",
             "|---|---|---|---|---|---|---|---|"]
    for r in preference["win_rates"]:
        interval = f"{r['low']:.0f}-{r['high']:.0f}" if r["low"] is not None else "-"
        lines.append(f"| {r['strategy']} | {r['rating']:.0f} | {interval} | {r['wins']} | "
                     f"{r['losses']} | {r['ties']} | {r['both_bad']} | {r['win_rate']:.0%} |")
    return [*lines, ""]


# --- the verdict ---------------------------------------------------------------------------
# Each criterion ranks modes by these metrics (a tie on the first broken by the next); which
# way is better, the label and the format come from the metrics table.
VERDICT = {
    "accuracy": ("recall", "similarity"),
    "latency": ("p50_total_ms",),
    "cost": ("mean_cost_usd",),
    "declining": ("decline_rate",),
}


def _key(summary: dict[str, Any], names: Sequence[str]) -> tuple[float, ...]:
    """Larger is better for every element, whichever way each metric points."""
    return tuple((summary.get(n) or 0.0) * (1 if METRICS[n].higher_is_better else -1)
                 for n in names)


def _show(summary: dict[str, Any], names: Sequence[str]) -> str:
    """The figures ranked on; a recall of answers the check may replace by quotes comes with
    the model's own-words recall and the quoted share."""
    shown = " / ".join(METRICS[n].show(summary.get(n)) for n in names)
    if "recall" in names and summary.get("quoted_rate") is not None:
        shown += (f", own words {_fmt(summary.get('generated_recall'), '.2f')}, "
                  f"{summary['quoted_rate']:.0%} quoted")
    return shown


def _verdict_lines(summary: dict[str, Any]) -> list[str]:
    """The verdict's bullets, judged afresh from the per-mode figures (so a summary written
    before a change to how the verdict reads is shown the current way)."""
    return [f"- {v['text']}." for k, v in verdict(summary["per_mode"]).items() if k != "text"]


def verdict(per_mode: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Which mode wins on accuracy (recall, then similarity), latency (p50), cost (mean) and
    declining out-of-scope questions; modes without the first figure are left out."""
    result: dict[str, Any] = {}
    for name, names in VERDICT.items():
        scored = [m for m, s in per_mode.items() if s.get(names[0]) is not None]
        order = sorted(scored, key=lambda m: _key(per_mode[m], names), reverse=True)
        if not order:
            continue
        best = _key(per_mode[order[0]], names)
        tied = [m for m in order if _key(per_mode[m], names) == best]
        label = " / ".join(METRICS[n].label for n in names)
        text = (", ".join(tied[:-1]) + f" and {tied[-1]} tie" if len(tied) > 1 else order[0]) + (
            f" ({label} {_show(per_mode[order[0]], names)}")
        if len(order) > len(tied):
            runner_up = order[len(tied)]
            text += f"; next {runner_up} {_show(per_mode[runner_up], names)}"
        result[name] = {"winner": order[0], "tied": tied, "ranking": order,
                        "text": f"{name.capitalize()}: {text})"}
    result["text"] = " ".join(v["text"] + "." for v in result.values())
    return result


# --- plots (drawn by assistant.evaluation.plots, as the Metrics tab's are) ---------------------
def write_plots(out_dir: Path, summary: dict[str, Any]) -> dict[str, str]:
    """accuracy_vs_cost.png, latency.png and tokens.png from the per-mode summary."""
    draw = {"accuracy_vs_cost": plots.accuracy_vs_cost_figure, "latency": plots.latency_figure,
            "tokens": plots.tokens_figure}
    paths = {name: out_dir / f"{name}.png" for name in PLOTS}
    for name, path in paths.items():
        draw[name](summary["per_mode"]).savefig(path)
    return {name: str(path) for name, path in paths.items()}


# --- files --------------------------------------------------------------------------------
def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _write_text(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_all(out_dir: Path, rows: Sequence[dict[str, Any]],
              summary: dict[str, Any]) -> dict[str, str]:
    """results.csv, the plots, report.md and summary.json (last: it lists the others)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"csv": str(out_dir / "results.csv")}
    write_csv(out_dir / "results.csv", rows)
    images = write_plots(out_dir, summary)
    files.update(images)
    files["report"] = str(out_dir / "report.md")
    files["summary"] = str(out_dir / "summary.json")
    _write_text(out_dir / "report.md", render_markdown(summary, rows, images))
    _write_text(out_dir / "summary.json",
                json.dumps({**summary, "files": files}, indent=2, default=str) + "\n")
    return files


# --- the adapter card ------------------------------------------------------------------------
def card_eval(summary: dict[str, Any]) -> dict[str, Any]:
    """The card's ``eval`` field: flat keys (``adapter_recall``...) the adapter list can show."""
    result: dict[str, Any] = {
        "questions": summary["questions_file"], "date": summary["date"],
        "n_questions": summary["n_questions"], "max_new_tokens": summary["max_new_tokens"],
        "session_id": summary["session_id"],
    }
    result.update(card_figures(summary["per_mode"]))  # <mode>_<metric>, the table's names
    result["break_even_questions"] = summary["break_even"]["questions"]
    return result


def update_card(folder: Path, summary: dict[str, Any]) -> str | None:
    """Set the scores on the adapter's card (card.json and card.md); None without a card."""
    from assistant.models.adapter_folder import Card

    card = Card.read(folder)
    if card is None:
        return None
    card.set_evaluation(card_eval(summary))
    return str(card.write(folder))
