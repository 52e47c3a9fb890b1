"""Router decisions, profile handling and threshold calibration (fake embedder, no model)."""

from __future__ import annotations

import json
import time

import pytest

from assistant.answering.routing import Router, Thresholds, calibrate
from assistant.errors import StrataError
from assistant.retrieval.store import Hit
from tests.retrieval_helpers import HashEmbedder

WATER = {"name": "water", "description": "water utility billing leaks meters tariffs",
         "examples": ["how much is the water connection fee", "who do I call about a water leak"]}


def hit(score: float) -> Hit:
    return Hit(id="c1", text="t", source="s.md", domain="d", section="", page=None, chunk=0,
               score=score)


@pytest.fixture
def router(tmp_path):
    folder = tmp_path / "adapters" / "water"
    folder.mkdir(parents=True)
    (folder / "profile.json").write_text(json.dumps(WATER))
    embedder = HashEmbedder()
    return Router(tmp_path / "adapters", embedder.embed_documents, Thresholds(0.5, 0.4)), embedder


@pytest.mark.parametrize(
    "question, top, mode",
    [
        ("how much is the water connection fee", 0.8, "layered"),
        ("how much is the water connection fee", 0.1, "adapter"),
        ("what is the capital of peru", 0.8, "prompt"),
        ("what is the capital of peru", 0.1, "base"),
    ],
)
def test_four_routes(router, question, top, mode):
    r, embedder = router
    decision = r.decide(embedder.embed_query(question), [hit(top)])
    assert decision.mode == mode
    assert (decision.adapter == "water") == (mode in ("layered", "adapter"))
    assert decision.scores["retrieval"] == top and "adapter:water" in decision.scores
    assert decision.reason.startswith(mode) and "0.50" in decision.reason


def test_unusable_adapters_are_never_chosen(router):
    r, embedder = router
    r.usable = lambda name: False
    decision = r.decide(embedder.embed_query("how much is the water connection fee"), [])
    assert decision.mode == "base" and decision.adapter is None
    assert "no adapter profiles" in decision.reason


def test_profile_changes_are_picked_up_and_malformed_ones_ignored(router, tmp_path):
    r, embedder = router
    q = embedder.embed_query("pizza dough recipe")
    assert r.adapter_scores(q)["water"] < 0.5
    profile = tmp_path / "adapters" / "water" / "profile.json"
    time.sleep(0.01)
    profile.write_text(json.dumps({**WATER, "examples": ["pizza dough recipe"]}))
    assert r.adapter_scores(q)["water"] > 0.99
    bad = tmp_path / "adapters" / "bad"
    bad.mkdir()
    (bad / "profile.json").write_text("[1, 2")
    assert set(r.adapter_scores(q)) == {"water"}


def test_calibrate_separates_domain_from_general():
    samples = [(0.7, 0.6, True), (0.65, 0.3, True), (0.6, 0.7, True),
               (0.2, 0.1, False), (0.3, 0.35, False), (0.25, 0.2, False)]
    thresholds, accuracy = calibrate(samples)
    assert accuracy == 1.0
    assert 0.3 < thresholds.adapter <= 0.6
    for a, r, is_domain in samples:
        routed = a >= thresholds.adapter or r >= thresholds.retrieval
        assert routed == is_domain


def test_calibrate_prefers_keeping_general_questions_off_adapters():
    # One general question scores like a domain one; the fit must not route it to an adapter.
    samples = [(0.7, 0.2, True), (0.72, 0.2, True), (0.71, 0.2, False), (0.2, 0.2, False)]
    thresholds, _ = calibrate(samples)
    assert thresholds.adapter > 0.71


def test_read_routes_names_the_bad_line(tmp_path):
    from assistant.commands.ask import read_routes

    path = tmp_path / "routes.jsonl"
    path.write_text('{"question": "a", "route": "domain"}\n{"question": "b"}\n')
    with pytest.raises(StrataError, match="routes.jsonl:2"):
        read_routes(path)
    path.write_text('{"question": "a", "route": "domain"}\n')
    with pytest.raises(StrataError, match="both domain and general"):
        read_routes(path)


def test_passages_from_an_adapters_domain_bring_in_that_adapter(router):
    r, embedder = router
    on_topic = Hit(id="c2", text="t", source="s.md", domain="water", section="", page=None,
                   chunk=0, score=0.6)
    decision = r.decide(embedder.embed_query("is there a social tariff"), [on_topic])
    assert decision.mode == "layered" and decision.adapter == "water"
    assert "best passage is from its domain" in decision.reason
