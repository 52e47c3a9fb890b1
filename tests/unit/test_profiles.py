"""Model profiles: the bundled reader keeps today's answer settings, any other model reads a
long context in its own words, and an explicit setting overrides either, visibly."""

from __future__ import annotations

import pytest

from assistant.errors import StrataError
from assistant.models import profiles
from assistant.settings import Settings


def settings(**kw) -> Settings:
    return Settings(_env_file=None, **kw)


def test_the_bundled_models_profile_is_exactly_todays_defaults():
    defaults = {name: Settings.model_fields[name].default for name in profiles.FIELDS}
    small = profiles.resolve(settings())
    assert small is profiles.SMALL_READER
    assert {name: getattr(small, name) for name in profiles.FIELDS} == defaults


def test_any_other_model_reads_a_longer_context_unchecked():
    other = profiles.resolve(settings(base_model="/models/Qwen2.5-7B-Instruct"))
    assert other is profiles.LONG_CONTEXT
    assert other.max_context_tokens > profiles.SMALL_READER.max_context_tokens
    assert not other.checks and not other.reranks


def test_the_served_model_decides_with_the_openai_backend():
    served = settings(backend="openai", backend_model="meta-llama/Llama-3.1-8B-Instruct")
    assert profiles.resolve(served) is profiles.LONG_CONTEXT
    assert profiles.resolve(settings(backend="openai")) is profiles.SMALL_READER


def test_an_explicit_setting_overrides_the_profile_and_the_name_says_so(monkeypatch):
    got = profiles.resolve(settings(quote_sentences=0))
    assert got.quote_sentences == 0 and got.max_context_tokens == 80
    assert got.name == "small-reader+quote_sentences=0"
    monkeypatch.setenv("ASSISTANT_MAX_CONTEXT_TOKENS", "512")
    assert profiles.resolve(settings()).name == "small-reader+max_context_tokens=512"


def test_an_explicit_value_equal_to_the_profiles_keeps_its_name():
    assert profiles.resolve(settings(quote_sentences=2)) is profiles.SMALL_READER


def test_a_profile_can_be_chosen_by_name_and_an_unknown_one_is_refused():
    assert profiles.resolve(settings(profile="long-context")) is profiles.LONG_CONTEXT
    with pytest.raises(StrataError, match="small-reader, long-context"):
        profiles.resolve(settings(profile="huge"))


def test_gemma_keeps_the_small_readers_settings():
    assert profiles.profile_for_model("gemma3-270m") is profiles.SMALL_READER
