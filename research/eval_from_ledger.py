"""An `assistant eval` run's results rebuilt from its ledger rows, when the run answered every
question but did not write its files (the process ended after the last answer).

    python -m research.eval_from_ledger --session eval-... --questions FILE --modes M,M
        [--adapter NAME] --out DIR

Every answer of an evaluation is one ledger row (session ``eval-<time>``) holding what the
scores need: the answer, the model's own text when the answer check replaced it, the
grounding, tokens, timings and costs. This pairs the rows with the questions in the order
`assistant eval` asks them (question by question, the modes in turn; the question text and
the mode are checked on every row), scores them with the evaluation's own functions and
writes results.csv, summary.json and report.md as the run would have. Not recoverable: the
re-ranker's token count and the finish reason (the ledger keeps neither), left empty.
Why a script: an evaluation on this machine takes an hour; its answers should not be lost
to a crash after the last one.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Any


def rows_from_ledger(records: list[dict[str, Any]], questions: list[Any],
                     modes: list[str]) -> list[dict[str, Any]]:
    """One evaluation row per (question, mode), from the session's records in asking order."""
    from assistant.evaluation.run import fact_recall
    from assistant.text import declines

    expected = [(i, q, m) for i, q in enumerate(questions) for m in modes]
    if len(records) != len(expected):
        raise SystemExit(f"the session has {len(records)} answers, the questions and modes "
                         f"make {len(expected)}")
    rows: list[dict[str, Any]] = []
    for (index, q, mode), r in zip(expected, records, strict=True):
        if r["question"] != q.question or r["requested_mode"] != mode:
            raise SystemExit(f"row {len(rows)}: the ledger has {r['requested_mode']!r} "
                             f"{r['question']!r}, the run asked {mode!r} {q.question!r}")
        text = r["answer"] or ""
        own = r["generated"] if r["generated"] is not None else text
        rows.append({
            "index": index, "line": q.line, "fact_id": q.fact_id, "question": q.question,
            "mode": mode, "out_of_scope": q.out_of_scope, "reference": q.answer,
            "must_contain": "|".join(q.must_contain), "error": r["error"],
            "chosen_mode": r["chosen_mode"], "adapter": r["adapter"], "answer": text,
            "recall": None if q.out_of_scope else fact_recall(text, q.must_contain),
            "similarity": None, "declined": declines(text), "grounding": r["grounding"],
            "generated_recall": None if q.out_of_scope else fact_recall(own, q.must_contain),
            "prompt_tokens": r["prompt_tokens"], "rerank_tokens": None,
            "completion_tokens": r["completion_tokens"], "ttft_ms": r["ttft_ms"],
            "total_ms": r["total_ms"], "tokens_per_s": r["tokens_per_s"],
            "cost_usd": r["cost_usd"], "token_cost_usd": r["token_cost_usd"],
            "compute_cost_usd": r["compute_cost_usd"], "finish_reason": None,
            "ledger_id": r["id"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--session", required=True, help="the run's ledger session id")
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--modes", required=True, help="as the run was given them, in order")
    parser.add_argument("--adapter")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="as the run had it (64)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from assistant.evaluation import report
    from assistant.evaluation.run import (
        add_similarity,
        break_even,
        load_questions,
        parse_modes,
        summarise_mode,
        training_cost_of,
    )
    from assistant.ledger import costs
    from assistant.services import Services
    from assistant.settings import get_settings

    services = Services(get_settings())
    questions = load_questions(args.questions)
    modes = [str(m) for m in parse_modes(args.modes)]  # the names, as the rows hold them
    found = services.ledger.query(
        "SELECT * FROM answers WHERE session_id = ? ORDER BY created_at", (args.session,))
    records = [dict(r) for r in found]
    rows = rows_from_ledger(records, questions, modes)
    add_similarity(services.embedder, rows)
    per_mode = {m: summarise_mode([r for r in rows if r["mode"] == m]) for m in modes}
    training = training_cost_of(services, args.adapter) if args.adapter else (None, "none")
    first, last = records[0]["created_at"], records[-1]["created_at"]
    summary = {
        "questions_file": str(args.questions), "n_questions": len(questions),
        "questions_note": None,
        "n_in_scope": sum(not q.out_of_scope for q in questions),
        "n_out_of_scope": sum(q.out_of_scope for q in questions),
        "modes": modes, "adapter": args.adapter, "session_id": args.session, "domains": None,
        "date": first, "last_answer": last, "base_model": records[0]["base_model"],
        "quant": records[0]["quantization"], "engine": records[0]["backend"],
        "max_new_tokens": args.max_new_tokens, "decoding": "greedy (temperature 0)",
        "seconds": round((datetime.fromisoformat(last) - datetime.fromisoformat(first))
                         .total_seconds(), 1), "prices": costs.describe(services.settings),
        "per_mode": per_mode, "break_even": break_even(per_mode, *training),
        "verdict": report.verdict(per_mode),
        "rebuilt_from_ledger": "python -m research.eval_from_ledger " + " ".join(
            shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
    }
    summary["files"] = report.write_all(args.out, rows, summary)
    print(json.dumps({m: round(s["recall"] or 0, 3) for m, s in per_mode.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
