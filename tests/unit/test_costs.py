"""The cost model: the formula, presets, overrides and training cost."""

from __future__ import annotations

import typing

import pytest

from assistant.ledger import costs
from assistant.settings import Settings as _Settings


def Settings(**kw) -> _Settings:  # noqa: N802 - reads like the class it builds
    """Settings without a developer's .env, so the defaults under test are the real ones."""
    return _Settings(_env_file=None, **kw)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("HARDWARE", "PER_HOUR", "INPUT_PER_MTOK", "OUTPUT_PER_MTOK"):
        monkeypatch.delenv(f"ASSISTANT_COST_{name}", raising=False)
    monkeypatch.delenv("ASSISTANT_BASE_MODEL", raising=False)


def test_estimate_matches_the_formula_with_defaults():
    s = Settings()
    got = costs.estimate(1_000, 200, 12.0, "smollm2-135m", s)
    price_in, price_out = costs.TOKEN_PRICES["smollm2-135m"]
    token = (1_000 * price_in + 200 * price_out) / 1e6
    compute = 12.0 * costs.HARDWARE_PRESETS["cpu-upgrade"] / 3600
    assert got.token_usd == pytest.approx(token)
    assert got.compute_usd == pytest.approx(compute)
    assert got.total_usd == pytest.approx(token + compute)
    assert got.total_usd > 0  # the default preset is a paid one, so costs are visible


def test_overrides_win_over_table_and_preset():
    s = Settings(cost_input_per_mtok=1.0, cost_output_per_mtok=3.0, cost_per_hour=36.0)
    got = costs.estimate(2_000_000, 1_000_000, 100.0, "smollm2-135m", s)
    assert got.token_usd == pytest.approx(2.0 + 3.0)
    assert got.compute_usd == pytest.approx(1.0)  # 100 s at $36/h
    assert got.to_dict() == {"token_usd": got.token_usd, "compute_usd": got.compute_usd,
                             "total_usd": got.total_usd}


def test_presets_and_unknown_models():
    assert costs.hourly_rate(Settings(cost_hardware="cpu-free")) == 0.0
    assert costs.hourly_rate(Settings(cost_hardware="gpu-small")) == 0.40
    free = costs.estimate(0, 0, 3600.0, "/some/local/model", Settings(cost_hardware="cpu-free"))
    assert free.total_usd == 0.0
    assert costs.token_prices("/some/local/model", Settings()) == costs.DEFAULT_TOKEN_PRICE
    assert costs.token_prices("gemma3-270m", Settings()) == costs.TOKEN_PRICES["gemma3-270m"]


def test_settings_presets_match_the_cost_table():
    choices = typing.get_args(_Settings.model_fields["cost_hardware"].annotation)
    assert set(choices) == set(costs.HARDWARE_PRESETS)


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("ASSISTANT_COST_HARDWARE", "gpu-small")
    monkeypatch.setenv("ASSISTANT_COST_OUTPUT_PER_MTOK", "0.5")
    monkeypatch.setenv("ASSISTANT_LEDGER_STORE_TEXT", "false")
    s = Settings()
    assert (s.cost_hardware, s.cost_output_per_mtok, s.ledger_store_text) == (
        "gpu-small", 0.5, False)
    with pytest.raises(ValueError):
        Settings(cost_hardware="mainframe")


def test_training_cost_is_compute_only():
    s = Settings(cost_hardware="gpu-small")
    assert costs.training_cost(1800.0, s) == pytest.approx(0.20)
    assert costs.training_cost(-5.0, s) == 0.0


def test_set_costs_fills_the_record():
    from assistant.ledger.store import AnswerRecord

    got = costs.estimate(100, 50, 2.0, "smollm2-135m", Settings())
    record = AnswerRecord(question="q").set_costs(got, hardware="cpu-upgrade")
    assert (record.token_cost_usd, record.compute_cost_usd, record.cost_usd) == (
        got.token_usd, got.compute_usd, got.total_usd)
    assert record.hardware == "cpu-upgrade"


def test_describe_states_the_assumptions():
    d = costs.describe(Settings(cost_per_hour=1.5))
    assert d == {"base_model": "smollm2-135m", "input_usd_per_mtok": 0.02,
                 "output_usd_per_mtok": 0.04, "hardware": "custom", "usd_per_hour": 1.5}
