"""Fixtures for unit tests: a tiny random Llama saved once per session, with two adapters."""

from __future__ import annotations

import pytest

from tests.tiny_models import save_tiny_adapter, tiny_llama, tiny_tokenizer


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory):
    """A saved tiny Llama + tokenizer (what a registry model's cache folder holds)."""
    path = tmp_path_factory.mktemp("tiny-base")
    tokenizer = tiny_tokenizer()
    tiny_llama(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_adapter_templates(tiny_base_dir, tmp_path_factory):
    """Two distinct adapters, built once; tests copy them into their own folders."""
    root = tmp_path_factory.mktemp("tiny-adapters")
    save_tiny_adapter(tiny_base_dir, root, "alpha", seed=1)
    save_tiny_adapter(tiny_base_dir, root, "beta", seed=2)
    return root


@pytest.fixture
def adapters_dir(tiny_adapter_templates, tmp_path):
    import shutil

    target = tmp_path / "adapters"
    shutil.copytree(tiny_adapter_templates, target)
    return target


@pytest.fixture
def tiny_base(tiny_base_dir):
    from tests.tiny_models import tiny_loaded

    return tiny_loaded(tiny_base_dir)
