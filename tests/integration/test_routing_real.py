"""Routing on the demo domain with the real embedder: domain questions reach the adapter,
general ones never do. (Decision time is measured in bench/bench_pipeline.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from assistant.answering.routing import Router, Thresholds, calibrate
from assistant.retrieval.ingest import ensure_demo_knowledge
from assistant.retrieval.store import KnowledgeStore
from assistant.settings import Settings

pytestmark = pytest.mark.integration
DOMAIN = Path("knowledge/harrowgate-water")


@pytest.fixture(scope="module")
def routed(tmp_path_factory, retrieval_embedder):
    root = tmp_path_factory.mktemp("routing")
    adapters = root / "adapters" / "harrowgate-water"
    adapters.mkdir(parents=True)
    shutil.copy(DOMAIN / "profile.json", adapters / "profile.json")
    settings = Settings(data_dir=root / "data", adapters_dir=root / "adapters")
    store = KnowledgeStore(settings, retrieval_embedder)
    ensure_demo_knowledge(settings, store)
    router = Router(settings.adapters_dir, retrieval_embedder.embed_documents, Thresholds())
    rows = [json.loads(line) for line in (DOMAIN / "qa" / "routes.jsonl").open()]
    results = []
    for row in rows:
        vector = retrieval_embedder.embed_query(row["question"])
        decision = router.decide(vector, store.search(row["question"], query_embedding=vector))
        results.append((row, decision))
    return results


def test_domain_questions_go_to_the_adapter_and_general_ones_never_do(routed):
    domain = [d for row, d in routed if row["route"] == "domain"]
    general = [(row["question"], d) for row, d in routed if row["route"] == "general"]
    assert len(domain) >= 20 and len(general) >= 12
    assert all(d.mode in ("adapter", "layered") and d.adapter == "harrowgate-water" for d in domain)
    assert [(q, d.mode) for q, d in general if d.adapter is not None] == []


def test_calibration_on_the_labelled_set_separates_it(routed):
    samples = [(max(v for k, v in d.scores.items() if k.startswith("adapter:")),
                d.scores["retrieval"], row["route"] == "domain") for row, d in routed]
    thresholds, accuracy = calibrate(samples)
    assert accuracy == 1.0
    assert thresholds.adapter > max(a for a, _, is_domain in samples if not is_domain)

