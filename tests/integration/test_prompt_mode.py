"""Prompt mode with the real model and embedder on the demo domain's held-out questions.

The facts are fictional, so the bare base cannot know them: every fact prompt mode gets
right came from retrieval. The issue's 70% target is measured on all 120 by the eval
(docs/evaluation.md, "Against the targets"); this test guards a floor on 15 of them (the
model's own answers alone, without the answer check, score far lower).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.answering.grounding import QUOTE_LEAD
from assistant.evaluation.run import fact_recall
from assistant.models.generation import SamplingParams
from assistant.retrieval.ingest import ensure_demo_knowledge
from assistant.services import Services
from assistant.settings import Settings

pytestmark = pytest.mark.integration
TEST_FILE = Path("knowledge/harrowgate-water/qa/test.jsonl")


@pytest.fixture(scope="module")
def services(tmp_path_factory, real_base, retrieval_embedder):
    root = tmp_path_factory.mktemp("prompt-mode")
    # the local engine, on the NF4 model handed in: the floor below was measured on it
    services = Services(Settings(data_dir=root / "data", adapters_dir=root / "adapters",
                                 backend="local"),
                        base=real_base, embedder=retrieval_embedder)
    ensure_demo_knowledge(services.settings, services.store)
    return services


def test_prompt_mode_brings_the_documents_facts_that_the_base_lacks(services):
    rows = [json.loads(line) for line in TEST_FILE.open()]
    questions = [r for r in rows if not r.get("out_of_scope")][::8]  # 15 spread over the docs
    params = SamplingParams(max_new_tokens=40, repetition_penalty=1.0)
    prompt, base = [], []
    for row in questions:
        answer = services.pipeline.ask(row["question"], mode="prompt", params=params)
        assert answer.sources and all(s.name.endswith((".md", ".txt", ".html", ".csv"))
                                      for s in answer.sources)
        assert answer.grounding in ("grounded", "declined") or (
            answer.grounding.startswith("quoted") and answer.text.startswith(QUOTE_LEAD))
        prompt.append(fact_recall(answer.text, row["must_contain"]))
        plain = services.pipeline.ask(row["question"], mode="base", params=params)
        base.append(fact_recall(plain.text, row["must_contain"]))
    prompt_recall, base_recall = sum(prompt) / len(prompt), sum(base) / len(base)
    print(f"prompt recall {prompt_recall:.2f} vs base {base_recall:.2f} on {len(prompt)} questions")
    assert prompt_recall >= base_recall + 0.1
    assert prompt_recall >= 0.6
    assert len(services.ledger.rows()) == 2 * len(questions)
