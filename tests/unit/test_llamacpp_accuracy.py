"""The start-up logits check of the llama.cpp backend, with a stand-in llama_cpp module
whose "repacked" weights compute wrong logits (as AMX does for Q4 types): the engine must
end up on the path that agrees with the reference, on any host."""

from __future__ import annotations

import ctypes
import types

import numpy as np
import pytest

from assistant.backends import llamacpp_accuracy
from assistant.backends.llamacpp_accuracy import open_checked, without_extra_buffers
from assistant.errors import StrataError

VOCAB = 64
REFERENCE = np.random.default_rng(0).normal(size=VOCAB).astype(np.float32)


def fake_llama_cpp(repacked_is_wrong: bool, plain_is_wrong: bool = False):
    """A module shaped like llama_cpp: Llama reads the default model params when built."""
    native = types.SimpleNamespace(
        llama_model_default_params=lambda: types.SimpleNamespace(use_extra_bufts=True))
    opened = []

    class Llama:
        def __init__(self, model_path, **kwargs):
            self.extra = native.llama_model_default_params().use_extra_bufts
            wrong = repacked_is_wrong if self.extra else plain_is_wrong
            noise = np.random.default_rng(1).normal(size=VOCAB) * (3.0 if wrong else 0.01)
            self.logits = (REFERENCE + noise).astype(np.float32)
            self.n_tokens, self.closed = 0, False
            self._ctx = types.SimpleNamespace(
                get_logits=lambda: self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
            opened.append(self)

        def eval(self, ids):
            self.n_tokens += len(ids)

        def n_vocab(self):
            return VOCAB

        def close(self):
            self.closed = True

    return types.SimpleNamespace(llama_cpp=native, Llama=Llama), opened


@pytest.fixture
def reference(tmp_path, monkeypatch):
    monkeypatch.setattr(llamacpp_accuracy, "REFERENCE_DIR", tmp_path)
    np.savez_compressed(tmp_path / "model.npz", ids=np.arange(5, dtype=np.int32),
                        logits=REFERENCE.astype(np.float16))
    return tmp_path / "model.gguf"


def test_a_host_whose_repacked_weights_are_right_keeps_them(reference):
    module, opened = fake_llama_cpp(repacked_is_wrong=False)
    llm, accuracy = open_checked(module, reference)
    assert llm.extra and accuracy.extra_buffers and accuracy.correlation > 0.99
    assert len(opened) == 1 and llm.n_tokens == 0


def test_a_host_whose_repacked_weights_are_wrong_gets_the_stored_weights(reference):
    module, opened = fake_llama_cpp(repacked_is_wrong=True)
    llm, accuracy = open_checked(module, reference)
    assert not llm.extra and not accuracy.extra_buffers
    assert accuracy.tried[0] < 0.99 <= accuracy.correlation
    assert opened[0].closed and not opened[1].closed
    assert module.llama_cpp.llama_model_default_params().use_extra_bufts  # patch undone


def test_an_engine_wrong_either_way_is_refused(reference):
    module, _ = fake_llama_cpp(repacked_is_wrong=True, plain_is_wrong=True)
    with pytest.raises(StrataError, match="disagree with the fp32 reference"):
        open_checked(module, reference)


def test_without_extra_buffers_restores_the_defaults_after_an_error():
    module, _ = fake_llama_cpp(repacked_is_wrong=False)
    with pytest.raises(RuntimeError), without_extra_buffers(module):
        assert not module.llama_cpp.llama_model_default_params().use_extra_bufts
        raise RuntimeError
    assert module.llama_cpp.llama_model_default_params().use_extra_bufts


def test_the_bundled_gguf_has_a_reference():
    from assistant.models.base_models import REGISTRY

    assert llamacpp_accuracy.reference_path(REGISTRY["smollm2-135m"].locate()).is_file()
