"""Sentence re-ranking on the llama.cpp engine: its question likelihood against the torch
model's on the demo domain's real candidate sentences, beside answers being decoded, and
an app on the default engine that answers in every mode without the torch model."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from assistant.answering import prompts, rerank
from assistant.backends.llamacpp_likelihood import LlamaLikelihood
from assistant.models.adapters import AdapterManager
from assistant.models.base_models import load_base_model
from assistant.models.likelihood import QuestionLikelihood
from assistant.retrieval.ingest import ensure_demo_knowledge
from assistant.services import Services
from assistant.settings import Settings

pytestmark = pytest.mark.integration
TEST_FILE = Path("knowledge/harrowgate-water/qa/test.jsonl")


@pytest.fixture(scope="module")
def candidates(real_base, retrieval_embedder, tmp_path_factory):
    """(question, the sentences prompt mode re-ranks for it, best first by embedding) for
    8 demo questions, as the pipeline ranks them."""
    root = tmp_path_factory.mktemp("rerank")
    services = Services(Settings(_env_file=None, data_dir=root / "data",
                                 adapters_dir=root / "adapters", backend="local"),
                        base=real_base, embedder=retrieval_embedder)
    ensure_demo_knowledge(services.settings, services.store)
    pipeline = services.pipeline
    rows = [json.loads(line) for line in TEST_FILE.open()]
    found = []
    for row in [r for r in rows if not r.get("out_of_scope")][::15][:8]:
        question = row["question"]
        _, hits, _ = pipeline.plan(question, "prompt", None)
        ranked = prompts.rank_sentences(question, hits, retrieval_embedder.embed_query(question),
                                        retrieval_embedder.embed_documents,
                                        services.store.sentences)
        found.append((question, ranked[:pipeline.profile.rerank_candidates]))
    return found


def test_llama_cpp_scores_questions_as_the_fp32_model_and_reranks_as_the_torch_scorer(
        backend, real_base, candidates, tmp_path):
    fp32 = load_base_model("smollm2-135m", Settings().cache_dir, "fp32")
    exact = QuestionLikelihood(AdapterManager(tmp_path, fp32))
    served = QuestionLikelihood(AdapterManager(tmp_path, real_base))  # NF4: what served before
    assert isinstance(backend.scorer, LlamaLikelihood)
    gaps, agree_fp32, agree_nf4 = [], 0, 0
    for question, lines in candidates:
        passages = [rerank.passage_text(line) for line in lines]
        ours, tokens = backend.scorer(question, passages)
        reference, reference_tokens = exact(question, passages)
        assert tokens == reference_tokens  # the same prompts, the opening read once
        gaps += [abs(a - b) for a, b in zip(ours, reference)]
        best = _shown(question, lines, ours)
        agree_fp32 += best == _shown(question, lines, reference)
        agree_nf4 += best == _shown(question, lines, served(question, passages)[0])
    print(f"max gap {max(gaps):.3f}, mean {sum(gaps) / len(gaps):.3f}; the same best two "
          f"sentences as fp32 on {agree_fp32}, as NF4 on {agree_nf4} of {len(candidates)}")
    # Q4_1 in llama.cpp against the fp32 weights it was quantized from: close, not equal
    assert max(gaps) < 0.15 and sum(gaps) / len(gaps) < 0.05, (max(gaps), gaps)
    assert agree_fp32 >= len(candidates) - 1
    assert agree_nf4 >= len(candidates) - 2


def _shown(question: str, lines: list[prompts.ContextLine], scores: list[float]) -> set[str]:
    """The two best sentences after re-ranking by ``scores``: what a small model's context
    shows first."""
    ranked, _ = rerank.rerank(question, lines, lambda q, p: (scores, 0), len(lines))
    return {line.text for line in ranked[:2]}


def test_a_question_scores_alike_alone_and_among_other_sentences(
        backend, candidates):
    question, lines = candidates[0]
    passages = [rerank.passage_text(line) for line in lines]
    together, _ = backend.scorer(question, passages)
    alone = [backend.scorer(question, [p])[0][0] for p in passages]
    assert together == pytest.approx(alone, abs=1e-3)
    assert backend.scorer(question, []) == ([], 0)


def test_scoring_beside_decoding_changes_neither_the_answers_nor_the_scores(
        backend, candidates):
    """Its own context: answers decoded while questions are scored equal the answers
    decoded alone, with and without an adapter, and the scores equal those computed alone."""
    question = [{"role": "user", "content": candidates[1][0]}]
    alone = [backend.generate(question, adapter=name).text for name in (None, "water")]
    scored = [(q, [rerank.passage_text(line) for line in lines]) for q, lines in candidates[:4]]
    expected = [backend.scorer(q, p)[0] for q, p in scored]
    scores: list[list[float]] = []
    done = threading.Event()

    def score() -> None:
        while not done.is_set():
            scores.extend(backend.scorer(q, p)[0] for q, p in scored)

    scorer = threading.Thread(target=score)
    scorer.start()
    try:
        beside = [backend.generate(question, adapter=name).text for name in (None, "water")]
    finally:
        done.set()
        scorer.join()
    assert beside == alone
    assert len(scores) >= 4
    for index, got in enumerate(scores):
        assert got == pytest.approx(expected[index % 4], abs=1e-4)


def test_the_default_engine_answers_every_mode_without_the_torch_model(
        adapters_dir, retrieval_embedder, tmp_path, monkeypatch):
    from assistant.models import base_models

    def refuse(*args, **kwargs):
        raise AssertionError("the torch base model was loaded")

    monkeypatch.setattr(base_models, "load_base_model", refuse)
    services = Services(Settings(_env_file=None, data_dir=tmp_path / "data",
                                 adapters_dir=adapters_dir, max_new_tokens=12),
                        embedder=retrieval_embedder)
    assert services.engine.engine == "llamacpp"
    ensure_demo_knowledge(services.settings, services.store)
    assert services.load_adapter("water") >= 0  # the Adapters tab's button: onto llama.cpp
    assert "water" in services.backend.describe()["adapters_converted"]
    question = "How much is the new connection fee?"
    prompt = services.pipeline.ask(question, mode="prompt")
    assert prompt.rerank_tokens > 0 and prompt.sources
    for mode in ("adapter", "layered", "base"):
        assert services.pipeline.ask(question, mode=mode, adapter="water"
                                     if mode != "base" else None).completion_tokens > 0
    assert services.reranker is services.backend.scorer
    assert services.base.model is None and services.adapters.resident == []
    assert "generator" not in services._parts
    assert services.loaded_adapters() == {"water"}  # the Adapters tab's column
    assert services.unload_adapter("water") and services.loaded_adapters() == set()
    # the rows say what ran: the GGUF's Q4_1, not the NF4 the settings give the torch base
    assert {row["quantization"] for row in services.ledger.rows()} == {"q4_1"}


def test_a_warmed_scorer_holds_its_context_and_scores_as_a_cold_one(backend):
    """``assistant serve`` warms the scorer at start (server.prepare): the context is made
    then, and the reading it does leaves nothing behind that moves a later score."""
    question = "How much is the new connection fee?"
    passages = ["The new connection fee is 148.50 pounds.", "Meters are read every quarter."]

    def scorer() -> LlamaLikelihood:
        return LlamaLikelihood(backend._llama_cpp, backend.llm._model.model,
                               backend.llm.n_vocab(), backend.tokenizer, 1)

    cold = scorer()
    expected, tokens = cold(question, passages)
    warmed = scorer()
    warmed.warm()
    assert warmed._seqs is not None
    scores, warm_tokens = warmed(question, passages)
    assert scores == pytest.approx(expected, abs=1e-4) and warm_tokens == tokens


def test_the_scorer_reads_on_every_core_only_while_no_answer_is_decoded(backend):
    """A visitor's re-ranking runs before their answer, with the engine idle: it reads on
    the prompt threads then, and on the decode threads beside others' answers (spinning
    threads beyond the free cores lose most of their speed). Its scores do not move."""
    question = "How much is the new connection fee?"
    passages = ["The new connection fee is 148.50 pounds.", "Meters are read every quarter.",
                "The board meets in the Skelby tithe barn every March."]
    busy = [True]
    scorer = LlamaLikelihood(backend._llama_cpp, backend.llm._model.model,
                             backend.llm.n_vocab(), backend.tokenizer, 1, 2,
                             busy=lambda: busy[0])
    beside_answers, tokens = scorer(question, passages)
    assert scorer._seqs is not None and scorer._seqs.threads == 1
    busy[0] = False
    alone, alone_tokens = scorer(question, passages)
    assert scorer._seqs.threads == 2 and alone_tokens == tokens
    assert alone == pytest.approx(beside_answers, abs=1e-5)
    # the engine's own scorer asks the engine: idle now, busy while it decodes an answer or
    # while something else in the process (a training job) holds the cores
    assert backend.scorer.idle_threads == backend.threads and not backend.scorer.busy()
    stream = backend.stream([{"role": "user", "content": "Count from one to twenty."}])
    assert any(backend.scorer.busy() for _ in stream)
    try:
        backend.busy_elsewhere = lambda: True
        assert backend.scorer.busy()
    finally:
        backend.busy_elsewhere = lambda: False
