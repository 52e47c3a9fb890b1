"""Which strategy people prefer: Bradley-Terry strengths from arena battles, with
bootstrap intervals.

A plain win rate depends on whom a strategy happened to meet; Bradley-Terry fits one
strength per strategy so that P(i beats j) = p_i / (p_i + p_j) across all the pairs at
once (the model behind Chatbot Arena's leaderboard). Ties, and "both bad", count half a
win to each side; "both bad" is also counted on its own, since two bad answers say
something a tie between two good ones does not. Each strategy also plays one won and one
lost game against a fixed reference strategy (a weak prior), so a strategy that won every
battle gets a finite strength and a handful of votes cannot claim a huge lead. Strengths
are shown on the Elo scale (1000 is the geometric mean; 400 points is 10:1 odds), and the
95% interval comes from refitting on battles resampled with replacement.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

CENTRE, SCALE = 1000.0, 400.0  # the Elo scale: CENTRE is the average strategy
PRIOR_GAMES = 1.0  # won and lost each, per strategy, against the fixed reference
ITERATIONS, TOLERANCE = 1000, 1e-10
_SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}  # what A scores against B


def win_rates(battles: Iterable[Mapping[str, Any]], bootstrap: int = 1000,
              seed: int = 0) -> list[dict[str, Any]]:
    """One row per strategy, strongest first: {strategy, rating, low, high, battles, wins,
    losses, ties, both_bad, win_rate}. ``rating`` is the Bradley-Terry strength on the
    Elo scale, ``low``/``high`` its bootstrap 95% interval (None with ``bootstrap`` 0), and
    ``win_rate`` the plain share of points won (ties and both-bad half)."""
    games = [(b["a_strategy"], b["b_strategy"], b["winner"]) for b in battles]
    if not games:
        return []
    names = sorted({name for a, b, _ in games for name in (a, b)})
    index = {name: i for i, name in enumerate(names)}
    categories = Counter((index[a], index[b], _SCORE[w]) for a, b, w in games)
    keys = list(categories)
    counts = np.array([categories[k] for k in keys], dtype=float)
    ratings = _fit(_points(keys, counts[None, :], len(names)))[0]
    low = high = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        samples = rng.multinomial(len(games), counts / counts.sum(), size=bootstrap)
        spread = _fit(_points(keys, samples.astype(float), len(names)))
        low, high = np.percentile(spread, [2.5, 97.5], axis=0)
    rows = [dict(strategy=name, rating=round(float(ratings[i]), 1),
                 low=None if low is None else round(float(low[i]), 1),
                 high=None if high is None else round(float(high[i]), 1),
                 **_tally(name, games)) for i, name in enumerate(names)]
    return sorted(rows, key=lambda r: (-r["rating"], r["strategy"]))


def _points(keys: list[tuple[int, int, float]], counts: np.ndarray, n: int) -> np.ndarray:
    """(samples, n, n): points strategy i scored against j, from category ``counts``."""
    points = np.zeros((counts.shape[0], n, n))
    for column, (a, b, score) in enumerate(keys):
        points[:, a, b] += counts[:, column] * score
        points[:, b, a] += counts[:, column] * (1.0 - score)
    return points


def _fit(points: np.ndarray) -> np.ndarray:
    """Bradley-Terry strengths of every sample at once, on the Elo scale: Hunter's (2004)
    minorise-maximise updates, with the prior games against a reference of strength 1."""
    games = points + np.swapaxes(points, 1, 2)
    won = points.sum(axis=2) + PRIOR_GAMES
    p = np.ones(points.shape[:2])
    for _ in range(ITERATIONS):
        pair = p[:, :, None] + p[:, None, :]
        new = won / ((games / pair).sum(axis=2) + 2 * PRIOR_GAMES / (p + 1.0))
        done = np.max(np.abs(np.log(new) - np.log(p))) < TOLERANCE
        p = new
        if done:
            break
    log_p = np.log10(p)
    return CENTRE + SCALE * (log_p - log_p.mean(axis=1, keepdims=True))


def _tally(name: str, games: list[tuple[str, str, str]]) -> dict[str, Any]:
    wins = losses = ties = both_bad = 0
    for a, b, winner in games:
        if name not in (a, b):
            continue
        if winner == "tie":
            ties += 1
        elif winner == "both_bad":
            both_bad += 1
        elif (winner == "a") == (name == a):
            wins += 1
        else:
            losses += 1
    played = wins + losses + ties + both_bad
    return {"battles": played, "wins": wins, "losses": losses, "ties": ties,
            "both_bad": both_bad, "win_rate": round((wins + 0.5 * (ties + both_bad)) / played, 4)}
