"""`assistant serve` warms the re-ranker at start when answers are re-ranked: llama.cpp's
scorer makes its context then, not in the first visitor's answer (issue 31, item 3); with
re-ranking off, or a scorer with nothing to warm, start-up does not touch it. The real
scorer warmed: tests/integration/test_llamacpp_rerank.py."""

from __future__ import annotations

import pytest

from assistant.server import prepare
from assistant.services import Services
from assistant.settings import Settings
from tests.retrieval_helpers import HashEmbedder
from tests.unit.test_remote_callers import remote_services


class WarmScorer:
    def __init__(self) -> None:
        self.warmed = 0

    def warm(self) -> None:
        self.warmed += 1

    def __call__(self, question: str, passages: list[str]) -> tuple[list[float], int]:
        return [0.0] * len(passages), 0


@pytest.fixture
def server():
    from tests.unit.test_backends import FakeServer

    return FakeServer(pieces=("The new connection fee", " is 148.50 pounds."))


def services_with(tmp_path, server, scorer: object, **settings: object) -> Services:
    remote = remote_services(tmp_path, server)
    values = {name: getattr(remote.settings, name) for name in remote.settings.model_fields_set}
    return Services(Settings(_env_file=None, **{**values, **settings}),
                    backend=remote.backend, embedder=HashEmbedder(), reranker=scorer)


def test_start_up_warms_the_scorer_when_answers_are_re_ranked(tmp_path, server):
    scorer = WarmScorer()
    services = services_with(tmp_path, server, scorer)
    assert services.pipeline.profile.reranks  # the default profile re-ranks
    prepare(services)
    assert scorer.warmed == 1


def test_start_up_leaves_the_scorer_alone_when_re_ranking_is_off(tmp_path, server):
    scorer = WarmScorer()
    services = services_with(tmp_path, server, scorer, rerank_candidates=0)
    assert not services.pipeline.profile.reranks
    prepare(services)
    assert scorer.warmed == 0


def test_a_scorer_with_nothing_to_warm_starts_as_before(tmp_path, server):
    services = services_with(tmp_path, server, lambda question, passages: ([0.0], 0))
    prepare(services)  # no warm(): nothing called, nothing raised
    assert services.store.count() > 0
