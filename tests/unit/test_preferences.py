"""Bradley-Terry win rates with bootstrap intervals over arena battles."""

from __future__ import annotations

import pytest

from assistant.ledger.preferences import CENTRE, win_rates


def battles(a, b, winner, count):
    return [{"a_strategy": a, "b_strategy": b, "winner": winner}] * count


def test_a_strategy_that_wins_80_percent_ranks_first_with_ordered_intervals():
    games = battles("prompt", "adapter:law", "a", 40) + battles("adapter:law", "prompt", "b", 40)
    games += battles("prompt", "adapter:law", "b", 10) + battles("adapter:law", "prompt", "a", 10)
    first, second = win_rates(games, bootstrap=500, seed=1)
    assert (first["strategy"], second["strategy"]) == ("prompt", "adapter:law")
    assert (first["wins"], first["losses"], first["battles"]) == (80, 20, 100)
    assert first["win_rate"] == 0.8
    assert second["win_rate"] == 0.2
    for row in (first, second):
        assert row["low"] <= row["rating"] <= row["high"]
    assert first["low"] > second["high"]  # the intervals do not overlap
    assert first["rating"] + second["rating"] == pytest.approx(2 * CENTRE, abs=0.2)


def test_ties_and_both_bad_count_half_and_both_bad_is_reported():
    games = battles("a1", "b1", "tie", 6) + battles("a1", "b1", "both_bad", 4)
    rows = {r["strategy"]: r for r in win_rates(games, bootstrap=50)}
    assert rows["a1"]["rating"] == pytest.approx(rows["b1"]["rating"])
    assert (rows["a1"]["ties"], rows["a1"]["both_bad"], rows["a1"]["win_rate"]) == (6, 4, 0.5)


def test_strength_is_transitive_and_a_clean_sweep_stays_finite():
    games = (battles("prompt", "layered", "a", 20) + battles("layered", "base", "a", 20))
    rows = win_rates(games, bootstrap=0)
    assert [r["strategy"] for r in rows] == ["prompt", "layered", "base"]
    assert all(r["low"] is None and r["high"] is None for r in rows)
    assert rows[0]["rating"] < CENTRE + 2000  # the prior keeps a sweep finite


def test_the_same_seed_gives_the_same_intervals_and_no_battles_give_no_rows():
    games = battles("x", "y", "a", 7) + battles("x", "y", "b", 3)
    assert win_rates(games, seed=3) == win_rates(games, seed=3)
    assert win_rates([]) == []


def test_the_eval_report_has_a_human_preference_section_for_the_adapter_under_test():
    from assistant.evaluation.report import human_preference, human_preference_lines

    games = (battles("prompt", "adapter:law", "b", 3) + battles("layered:law", "base", "tie", 1)
             + battles("prompt", "base", "a", 5))  # no side uses the adapter: left out
    preference = human_preference(games, "law")
    assert preference is not None and preference["battles"] == 4
    assert {r["strategy"] for r in preference["win_rates"]} == {
        "prompt", "adapter:law", "layered:law", "base"}
    text = "\n".join(human_preference_lines(preference))
    assert text.startswith("## Human preference") and "| adapter:law |" in text
    assert human_preference(games, "other") is None and human_preference(games, None) is None
    assert human_preference_lines(None) == []
