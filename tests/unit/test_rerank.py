"""Re-ranking context sentences by question likelihood (assistant/rerank.py)."""

from __future__ import annotations

import pytest

from assistant.answering import rerank
from assistant.answering.prompts import ContextLine
from assistant.models.likelihood import QuestionLikelihood

RANKED = [ContextLine(1, "Fees", "Fees are reviewed every year.", 0.80),
          ContextLine(1, "Fees", "The late payment fee is £12.", 0.78),
          ContextLine(2, "Board", "The board meets monthly.", 0.60),
          ContextLine(2, "Board", "Minutes are published online.", 0.50)]


def likes_amounts(question, passages):
    """A fake scorer: a passage with a £ amount explains a fee question best."""
    return [-1.0 if "£" in p else -3.0 for p in passages], 7 * len(passages)


def test_rerank_reorders_only_the_candidates_and_counts_the_tokens():
    ranked, tokens = rerank.rerank("How much is the late fee?", RANKED, likes_amounts, 3)
    assert [line.text for line in ranked] == [
        "The late payment fee is £12.", "Fees are reviewed every year.",
        "The board meets monthly.", "Minutes are published online."]
    assert ranked[0].score == pytest.approx(0.78 - 0.1)
    assert tokens == 21  # three candidates scored


@pytest.mark.parametrize("candidates, weight", [(0, 0.1), (1, 0.1), (3, 0.0)])
def test_rerank_off_keeps_the_embedding_order(candidates, weight):
    ranked, tokens = rerank.rerank("q", RANKED, likes_amounts, candidates, weight)
    assert ranked == RANKED and tokens == 0


def test_the_scorer_reads_each_sentence_with_its_section():
    seen = []
    rerank.rerank("q", RANKED, lambda q, ps: (seen.extend(ps) or [0.0] * len(ps), 0), 2)
    assert seen == ["(Fees) Fees are reviewed every year.", "(Fees) The late payment fee is £12."]


def test_question_likelihood_on_a_real_model_is_batch_independent(tiny_base, tmp_path):
    """Padding must not change a passage's score: each alone equals its score in the batch."""
    from assistant.models.adapters import AdapterManager

    scorer = QuestionLikelihood(AdapterManager(tmp_path, tiny_base, 1))
    passages = ["The water cooperative charges a connection fee of 148.50 pounds.",
                "Hello world.", "What is the capital of France? Paris."]
    question = "What is the connection fee?"
    together, tokens = scorer(question, passages)
    alone = [scorer(question, [p])[0][0] for p in passages]
    assert together == pytest.approx(alone, abs=1e-4)
    assert all(score < 0 for score in together) and len(set(together)) == 3
    assert tokens > 3 * len(tiny_base.tokenizer(question)["input_ids"])
