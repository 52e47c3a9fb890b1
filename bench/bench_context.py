"""What prompt mode shows the model: is the answer there at all? (no generation)

For every in-scope held-out question of the demo domain, the pipeline's own retrieval,
sentence ranking and re-ranking (``Pipeline.rank``, ``prompts.condense``) build the context
at several token budgets; the
score is the evaluation's fact recall of that *context*: the ceiling for an answer read
from it. Also scored: the quote prompt mode falls back to (``grounding.quote``, the best
1-3 sentences of the whole ranking), the ceiling of a quoted answer. The gap between
these ceilings and the eval's prompt-mode recall is what the reader loses.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "knowledge" / "harrowgate-water" / "qa" / "test.jsonl"
BUDGETS = (48, 80, 120, 160)
QUOTES = (1, 2, 3)


def run(quick: bool = False) -> dict:
    from assistant.answering import grounding, prompts
    from assistant.evaluation.run import fact_recall, load_questions
    from assistant.ledger.metrics import percentile
    from assistant.retrieval.ingest import ensure_demo_knowledge
    from assistant.services import Services
    from assistant.settings import Settings

    questions = [q for q in load_questions(QUESTIONS) if not q.out_of_scope]
    questions = questions[::4] if quick else questions
    with tempfile.TemporaryDirectory() as tmp:
        services = Services(Settings(data_dir=Path(tmp) / "data"))
        ensure_demo_knowledge(services.settings, services.store)
        embedder, count = services.embedder, services.generator.count_tokens
        vectors: dict[str, list[float]] = {}  # each sentence embedded once, not per budget

        def embed(texts: list[str]) -> list[list[float]]:
            missing = [t for t in dict.fromkeys(texts) if t not in vectors]
            vectors.update(zip(missing, embedder.embed_documents(missing) if missing else []))
            return [vectors[t] for t in texts]

        in_context = {b: [] for b in BUDGETS}
        quoted = {k: [] for k in QUOTES}
        unreranked: dict[int, list[float]] = {k: [] for k in QUOTES}
        rank_ms, rerank_tokens = [], []
        for q in questions:
            vector = embedder.embed_query(q.question)
            hits = services.store.search(q.question, query_embedding=vector)
            started = time.perf_counter()
            ranked, tokens = services.pipeline.rank(q.question, hits, vector)
            rank_ms.append((time.perf_counter() - started) * 1000)
            rerank_tokens.append(tokens)
            by_embedding = prompts.rank_sentences(q.question, hits, vector, embed)
            for k in QUOTES:
                unreranked[k].append(fact_recall(grounding.quote(by_embedding, k), q.must_contain)
                                     if by_embedding else 0.0)
            for b in BUDGETS:
                lines = prompts.condense(ranked, count, b)
                in_context[b].append(fact_recall(prompts.format_context(lines), q.must_contain))
            for k in QUOTES:
                quoted[k].append(fact_recall(grounding.quote(ranked, k), q.must_contain)
                                 if ranked else 0.0)

    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 3)

    return {
        "questions": len(questions),
        "questions_file": str(QUESTIONS.relative_to(ROOT)),
        "answer_in_context": {str(b): mean(v) for b, v in in_context.items()},
        "answer_in_quote": {str(k): mean(v) for k, v in quoted.items()},
        "answer_in_quote_without_rerank": {str(k): mean(v) for k, v in unreranked.items()},
        "rerank_candidates": services.settings.rerank_candidates,
        "rank_ms": {"p50": round(percentile(rank_ms, 50), 1),
                    "p95": round(percentile(rank_ms, 95), 1)},
        "mean_rerank_tokens": round(sum(rerank_tokens) / len(rerank_tokens), 1),
    }


def markdown(result: dict) -> str:
    ctx, quote = result["answer_in_context"], result["answer_in_quote"]
    lines = [
        f"{result['questions']} in-scope questions of `{result['questions_file']}`; fact recall "
        "of what the model is shown (no generation), the ceiling for prompt mode's answers.",
        "",
        "| context tokens | " + " | ".join(ctx) + " |",
        "|---|" + "---:|" * len(ctx),
        "| answer in the context | " + " | ".join(f"{v:.2f}" for v in ctx.values()) + " |",
        "",
        "The quote prompt mode shows instead of an unsupported answer (the best sentences of "
        "the ranking, whether or not they fitted the model's context): "
        + ", ".join(f"{k} sentence{'s' if k != '1' else ''} {v:.2f}" for k, v in quote.items())
        + "; by the embedding ranking alone, without re-ranking: "
        + ", ".join(f"{v:.2f}" for v in result["answer_in_quote_without_rerank"].values())
        + f". Ranking and re-ranking the best {result['rerank_candidates']} sentences "
        f"(`assistant/rerank.py`) took p50 {result['rank_ms']['p50']:.0f} ms, "
        f"p95 {result['rank_ms']['p95']:.0f} ms per question; the re-ranker read "
        f"{result['mean_rerank_tokens']:.0f} tokens.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
