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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "knowledge" / "harrowgate-water" / "qa" / "test.jsonl"
BUDGETS = (48, 80, 120, 160)
QUOTES = (1, 2, 3)


def run(quick: bool = False) -> dict:
    from assistant import grounding, prompts
    from assistant.evaluation import fact_recall, load_questions
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
        for q in questions:
            vector = embedder.embed_query(q.question)
            hits = services.store.search(q.question, query_embedding=vector)
            ranked, _ = services.pipeline.rank(q.question, hits, vector)
            for b in BUDGETS:
                lines = prompts.condense(q.question, hits, vector, embed, count, b, ranked)
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
        + ".",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
