"""Adapter manager on a tiny random Llama: swapping, refusals, eviction, threads."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
import torch

from assistant.errors import AdapterError
from assistant.models.adapters import AdapterManager
from tests.tiny_models import save_tiny_adapter

PROMPT = torch.tensor([[5, 17, 42, 99, 7, 3]])


def logits(manager: AdapterManager, name: str | None) -> torch.Tensor:
    with manager.using(name) as model, torch.inference_mode():
        return model(input_ids=PROMPT).logits[0, -1].clone()


@pytest.fixture
def manager(adapters_dir, tiny_base):
    return AdapterManager(adapters_dir, tiny_base, max_resident=4)


def test_each_adapter_changes_outputs_and_none_is_the_base(manager, tiny_base):
    with torch.inference_mode():
        bare = tiny_base.model(input_ids=PROMPT).logits[0, -1].clone()
    alpha, beta = logits(manager, "alpha"), logits(manager, "beta")
    assert not torch.allclose(alpha, bare, atol=1e-4)
    assert not torch.allclose(beta, bare, atol=1e-4)
    assert not torch.allclose(alpha, beta, atol=1e-4)
    assert torch.allclose(logits(manager, None), bare, atol=1e-6)
    # Swapping back restores each adapter's outputs exactly.
    assert torch.allclose(logits(manager, "alpha"), alpha, atol=1e-6)
    assert torch.allclose(logits(manager, "beta"), beta, atol=1e-6)
    assert sorted(manager.resident) == ["alpha", "beta"]


def test_base_is_never_reloaded(manager, tiny_base):
    before = id(tiny_base.model)
    for name in ["alpha", "beta", None, "alpha"]:
        logits(manager, name)
    assert id(manager.base.model) == before


def test_lru_eviction_keeps_at_most_n_and_reloads_on_demand(adapters_dir, tiny_base):
    manager = AdapterManager(adapters_dir, tiny_base, max_resident=1)
    alpha = logits(manager, "alpha")
    logits(manager, "beta")
    assert manager.resident == ["beta"]
    assert torch.allclose(logits(manager, "alpha"), alpha, atol=1e-6)
    assert manager.resident == ["alpha"]
    assert manager.unload("alpha") and manager.resident == []


def test_adapter_changed_on_disk_is_reloaded(manager, adapters_dir, tiny_base_dir):
    old = logits(manager, "alpha")
    save_tiny_adapter(tiny_base_dir, adapters_dir, "alpha", seed=9)  # retrained in place
    new = logits(manager, "alpha")
    assert not torch.allclose(old, new, atol=1e-4)


def test_list_reports_config_and_problems(manager, adapters_dir):
    (adapters_dir / "broken").mkdir()
    (adapters_dir / "broken" / "adapter_config.json").write_text("{not json")
    infos = {i.name: i for i in manager.list()}
    assert infos["alpha"].ok and infos["alpha"].rank == 4
    assert infos["alpha"].target_modules == ["q_proj", "v_proj"]
    assert not infos["broken"].ok and "not valid JSON" in infos["broken"].problem


@pytest.mark.parametrize(
    "name, message",
    [
        ("../escape", "invalid adapter name"),
        ("/etc", "invalid adapter name"),
        ("a/b", "invalid adapter name"),
        ("", "invalid adapter name"),
        ("nope", "unknown adapter 'nope'"),
    ],
)
def test_bad_names_are_refused(manager, name, message):
    with pytest.raises(AdapterError, match=message):
        logits(manager, name)


def test_symlink_out_of_the_directory_is_refused(manager, adapters_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (adapters_dir / "sneaky").symlink_to(outside)
    with pytest.raises(AdapterError, match="outside"):
        manager.check("sneaky")


def _break(adapters_dir, name, how):
    folder = adapters_dir / name
    config = folder / "adapter_config.json"
    if how == "pickle":
        (folder / "adapter_model.bin").write_bytes(b"\x80\x04K\x01.")
    elif how == "no-config":
        config.unlink()
    elif how == "bad-json":
        config.write_text("{")
    elif how == "not-lora":
        config.write_text(json.dumps({**json.loads(config.read_text()), "peft_type": "IA3"}))
    elif how == "no-weights":
        (folder / "adapter_model.safetensors").unlink()
    elif how == "corrupt-weights":
        (folder / "adapter_model.safetensors").write_bytes(b"garbage" * 10)
    elif how == "other-base":
        cfg = json.loads(config.read_text())
        config.write_text(json.dumps({**cfg, "base_model_name_or_path": "gemma3-270m"}))


@pytest.mark.parametrize(
    "how, message",
    [
        ("pickle", "pickle weights"),
        ("no-config", "no adapter_config.json"),
        ("bad-json", "not valid JSON"),
        ("not-lora", "peft_type must be 'LORA'"),
        ("no-weights", "no adapter_model.safetensors"),
        ("corrupt-weights", "corrupt"),
        ("other-base", "trained for base model 'gemma3-270m'"),
    ],
)
def test_bad_adapters_are_refused_and_the_manager_keeps_working(manager, adapters_dir, how, message):
    good = logits(manager, "alpha")
    _break(adapters_dir, "beta", how)
    with pytest.raises(AdapterError, match=message):
        logits(manager, "beta")
    assert torch.allclose(logits(manager, "alpha"), good, atol=1e-6)
    assert manager.resident == ["alpha"]


def test_adapter_for_modules_the_base_lacks_is_refused(manager, adapters_dir, tiny_base_dir):
    # Target a module name that exists in the saving model but is checked on load:
    save_tiny_adapter(tiny_base_dir, adapters_dir, "odd", seed=3, targets=("gate_proj",))
    cfg_file = adapters_dir / "odd" / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["target_modules"] = ["no_such_proj"]
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(AdapterError, match="does not fit"):
        logits(manager, "odd")
    assert "odd" not in manager.resident
    logits(manager, "alpha")  # still usable


def test_concurrent_requests_never_mix_adapters(manager):
    expected = {name: logits(manager, name) for name in ["alpha", "beta", None]}
    failures: list[str] = []

    def worker(name):
        for _ in range(15):
            if not torch.allclose(logits(manager, name), expected[name], atol=1e-6):
                failures.append(str(name))

    threads = [threading.Thread(target=worker, args=(n,)) for n in ["alpha", "beta", None] * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_names_with_dots_and_underscores_load_and_never_collide(manager, adapters_dir):
    from assistant.models.adapters import peft_key

    # 'v1.2' is a valid adapter name, but PEFT refuses '.' inside its own adapter names
    shutil.copytree(adapters_dir / "alpha", adapters_dir / "v1.2")
    shutil.copytree(adapters_dir / "beta", adapters_dir / "v1_d2")  # would collide with '_d'
    assert torch.allclose(logits(manager, "v1.2"), logits(manager, "alpha"), atol=1e-6)
    assert torch.allclose(logits(manager, "v1_d2"), logits(manager, "beta"), atol=1e-6)
    assert manager.unload("v1.2") and "v1.2" not in manager.resident
    assert len({peft_key(n) for n in ["a.b", "a_b", "a_db", "a__b", "a.db"]}) == 5
