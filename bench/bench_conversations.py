"""What answering a follow-up with its history costs before the answer starts.

Per follow-up of the demo conversations (knowledge/<domain>/qa/conversations.jsonl): the
standalone-query step (``conversation.standalone``) alone, and prompt mode's preparation
(query embedding, search, sentence ranking and re-ranking: ``Pipeline.plan`` +
``Pipeline.messages``) for the standalone query with the history against the follow-up
alone. The difference plus the step is what the history adds to a follow-up (the issue's
target: at most 150 ms p95); layered mode prepares the same way. The two are measured in
turn, repeatedly, the median per follow-up kept, so load from other processes on a shared
machine falls on both alike. No answer is generated: generation does not depend on the
query. The embedder keeps one query in its cache, so plan() and messages() share it as in
an answer while every measured query is embedded afresh.

If ``bench/results/conversations-eval/conversations.json`` exists (``assistant eval
--conversations ... --out bench/results/conversations-eval``), its recall table comes first.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

DOMAIN = Path("knowledge/harrowgate-water")
CONVERSATIONS = DOMAIN / "qa" / "conversations.jsonl"
EVAL_RESULT = Path(__file__).parent / "results" / "conversations-eval" / "conversations.json"
TARGET_P95_MS = 150  # the bound on what the standalone-query step adds


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


def follow_ups(path: Path = CONVERSATIONS) -> list[tuple[str, list[dict[str, str]]]]:
    """(follow-up, history) for every later in-scope turn; the assistant turns are
    placeholders (the standalone query reads only the user turns)."""
    from assistant.evaluation.conversations import load_conversations

    found = []
    for conv in load_conversations(path):
        history: list[dict[str, str]] = []
        for number, turn in enumerate(conv.turns, start=1):
            if number > 1 and not turn.out_of_scope:
                found.append((turn.question, list(history)))
            history += [{"role": "user", "content": turn.question},
                        {"role": "assistant", "content": " ".join(turn.must_contain) or "-"}]
    return found


def step_times(cases: list[tuple[str, list[dict[str, str]]]], reps: int) -> list[float]:
    """Milliseconds per ``conversation.standalone`` call, every case ``reps`` times."""
    from assistant.answering.conversation import standalone

    times = []
    for _ in range(reps):
        for question, history in cases:
            started = time.perf_counter()
            standalone(question, history)
            times.append((time.perf_counter() - started) * 1000)
    return times


def prepare(services, question: str, history: list[dict[str, str]]) -> tuple[float, int]:
    """Prompt mode's work before generation for ``question`` after ``history``: its
    milliseconds, and the tokens the re-ranker read (the same on any machine load)."""
    from assistant.answering.conversation import standalone

    started = time.perf_counter()
    turn = standalone(question, history)
    decision, hits, _ = services.pipeline.plan(turn.query, "prompt", None)
    prepared = services.pipeline.messages(turn.question, decision, hits, history)
    return (time.perf_counter() - started) * 1000, prepared.rerank_tokens


def run(quick: bool = False) -> dict:
    from assistant.retrieval.embeddings import SentenceEmbedder
    from assistant.retrieval.ingest import ensure_demo_knowledge
    from assistant.services import Services
    from assistant.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="bench-conversations-"))
    services = Services(Settings(data_dir=tmp / "data", adapters_dir=tmp / "adapters"),
                        embedder=SentenceEmbedder(cache_size=1))
    ensure_demo_knowledge(services.settings, services.store)
    cases = follow_ups()[: 8 if quick else None]
    reps = 1 if quick else 3
    steps = step_times(cases, 20 if quick else 200)
    prepare(services, "warm up", [])  # loads the model, embedder and store
    added, with_ms, alone_ms, tokens = [], [], [], []
    for question, history in cases:
        pairs = [(prepare(services, question, history), prepare(services, question, []))
                 for _ in range(reps)]
        with_ms.append(statistics.median(p[0][0] for p in pairs))
        alone_ms.append(statistics.median(p[1][0] for p in pairs))
        added.append(with_ms[-1] - alone_ms[-1])
        tokens.append((pairs[0][0][1], pairs[0][1][1]))
    return {
        "follow_ups": len(cases), "repetitions": reps, "target_p95_ms": TARGET_P95_MS,
        "step_ms": {"n": len(steps), "p50": _pct(steps, 0.5), "p95": _pct(steps, 0.95)},
        "prepare_with_history_ms": {"p50": _pct(with_ms, 0.5), "p95": _pct(with_ms, 0.95)},
        "prepare_alone_ms": {"p50": _pct(alone_ms, 0.5), "p95": _pct(alone_ms, 0.95)},
        "added_ms": {"p50": _pct(added, 0.5), "p95": _pct(added, 0.95),
                     "max": round(max(added), 3)},
        "rerank_tokens": {"with_history": round(statistics.mean(t[0] for t in tokens), 1),
                          "alone": round(statistics.mean(t[1] for t in tokens), 1)},
    }


def markdown(result: dict) -> str:
    rows = []
    if EVAL_RESULT.is_file():
        from assistant.evaluation.conversations import markdown as recall_table

        summary = json.loads(EVAL_RESULT.read_text())
        rows += [recall_table(summary), "",
                 f"(`assistant eval --conversations {CONVERSATIONS} --modes "
                 f"{','.join(summary['modes'])} --out bench/results/{EVAL_RESULT.parent.name}`)",
                 ""]
    step, added = result["step_ms"], result["added_ms"]
    verdict = "met" if added["p95"] <= result["target_p95_ms"] else "**missed**"
    rows += [
        f"What a follow-up's history adds before the answer starts, over "
        f"{result['follow_ups']} demo follow-ups (prompt mode; median of "
        f"{result['repetitions']} per follow-up):", "",
        "| | p50 | p95 |", "|---|---|---|",
        f"| standalone-query step alone | {step['p50']} ms | {step['p95']} ms |",
        f"| preparation, standalone query with the history | "
        f"{result['prepare_with_history_ms']['p50']:.0f} ms | "
        f"{result['prepare_with_history_ms']['p95']:.0f} ms |",
        f"| preparation, the follow-up alone | {result['prepare_alone_ms']['p50']:.0f} ms | "
        f"{result['prepare_alone_ms']['p95']:.0f} ms |",
        f"| added by the history | {added['p50']:.0f} ms | {added['p95']:.0f} ms |", "",
        *_tokens_line(result.get("rerank_tokens")),
        f"Target: the history adds at most {result['target_p95_ms']} ms p95: {verdict}.",
    ]
    return "\n".join(rows)


def _tokens_line(tokens: dict | None) -> list[str]:
    """The re-ranker's reading with and without the history: the part of the added time
    that does not depend on the machine's load."""
    if not tokens:
        return []
    return [f"The re-ranker read {tokens['with_history']:.0f} tokens per follow-up with the "
            f"history, {tokens['alone']:.0f} for the follow-up alone.", ""]
