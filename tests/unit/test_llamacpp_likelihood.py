"""The llama.cpp question-likelihood scorer's arithmetic, without llama.cpp (its scores
against the torch model's: tests/integration/test_llamacpp_rerank.py)."""

from __future__ import annotations

import math

import numpy as np

from assistant.backends import llamacpp_likelihood as scoring


def test_rows_take_turns_when_they_do_not_fit_beside_the_shared_opening(monkeypatch):
    monkeypatch.setattr(scoring, "N_CTX", 100)
    rows = [[0] * 40, [0] * 40, [0] * 40, [0] * 60]  # 10 shared, rests of 30, 30, 30, 50
    assert scoring._turns(rows, 10) == [[0, 1, 2], [3]]
    monkeypatch.setattr(scoring, "SLOTS", 3)  # the opening's sequence and two rows
    assert scoring._turns(rows, 10) == [[0, 1], [2, 3]]


def test_log_probabilities_sum_to_one_and_keep_the_order():
    logits = np.array([1000.0, 999.0, 0.0], dtype=np.float32)  # large: no overflow
    log_probs = scoring._log_softmax(logits)
    assert math.isclose(float(np.exp(log_probs).sum()), 1.0, rel_tol=1e-9)
    assert log_probs[0] > log_probs[1] > log_probs[2]
    assert math.isclose(float(log_probs[0] - log_probs[1]), 1.0, rel_tol=1e-6)
