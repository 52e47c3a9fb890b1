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
def test_bad_adapters_are_refused_and_the_manager_keeps_working(
        manager, adapters_dir, how, message):
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


# --- one broken card or profile refuses that adapter, never the others -------------------
BROKEN = {  # what a careless edit or a crash leaves in card.json / profile.json
    "not json": {"card.json": "{oops", "profile.json": "{oops"},
    "a list": {"card.json": "[1, 2]", "profile.json": "[1, 2]"},
    "wrong types": {"card.json": json.dumps({"name": "beta", "system_prompt": 5}),
                    "profile.json": json.dumps({"description": 5, "examples": "fee"})},
    "not utf-8": {"card.json": b"\xff\xfe{}", "profile.json": b"\xff\xfe{}"},
}


def write_broken(path, how):
    content = BROKEN[how][path.name]
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


@pytest.mark.parametrize("file", ["card.json", "profile.json"])
@pytest.mark.parametrize("how", list(BROKEN))
def test_a_broken_card_or_profile_refuses_that_adapter_only(manager, adapters_dir, file, how):
    good = logits(manager, "alpha")
    write_broken(adapters_dir / "beta" / file, how)
    infos = {i.name: i for i in manager.list()}
    assert infos["alpha"].ok
    assert not infos["beta"].ok and infos["beta"].card is None
    assert infos["beta"].problem.startswith(f"adapter 'beta': {file}")
    with pytest.raises(AdapterError, match=f"'beta': {file}"):
        logits(manager, "beta")
    assert torch.allclose(logits(manager, "alpha"), good, atol=1e-6)


def test_a_good_card_is_listed_and_read_through_card(manager, adapters_dir):
    (adapters_dir / "alpha" / "card.json").write_text(json.dumps(
        {"name": "alpha", "system_prompt": "You are Alpha.", "seconds": 3.0, "eval": None}))
    info = manager.info("alpha")
    assert info.ok and info.card.system_prompt == "You are Alpha." and info.card.seconds == 3.0
    assert info.to_dict()["card"]["system_prompt"] == "You are Alpha."
    json.dumps(info.to_dict())  # the CLI prints it as JSON


def test_an_adapter_served_on_other_weights_than_it_trained_on_is_said_in_the_log(
        manager, adapters_dir, tiny_base, caplog):
    import logging

    card = adapters_dir / "alpha" / "card.json"
    card.write_text(json.dumps({"quant": "nf4"}))
    with caplog.at_level(logging.WARNING, logger="assistant.models.adapters"):
        manager.load("alpha")
        manager.unload("alpha")
        manager.load("alpha")  # the same adapter again: said once
    said = (f"adapter 'alpha' was trained on nf4 weights and is served on {tiny_base.quant} "
            "weights here: it may recall fewer facts than it learnt. Serve it as trained "
            "(ASSISTANT_QUANT=nf4)")
    assert caplog.text.count(said) == 1
    caplog.clear()
    card.write_text(json.dumps({"quant": tiny_base.quant}))  # retrained where it is served
    with caplog.at_level(logging.WARNING, logger="assistant.models.adapters"):
        manager.load("alpha")
    assert "was trained on" not in caplog.text


def test_the_gguf_values_are_one_precision_whichever_engine_computes_with_them():
    from assistant.models.adapter_folder import Card, precision_mismatch

    fp32, nf4 = Card({"quant": "fp32"}), Card({"quant": "nf4"})
    assert precision_mismatch("a", fp32, "gguf") is None
    on_llama = precision_mismatch("a", nf4, "gguf")
    assert "served on llama.cpp's GGUF 4-bit weights" in on_llama
    assert "ASSISTANT_BACKEND=local ASSISTANT_QUANT=nf4" in on_llama
    assert "trained on fp32 weights and is served on nf4" in precision_mismatch("a", fp32, "nf4")
    assert precision_mismatch("a", Card({}), "nf4") is None  # the card does not say
    assert precision_mismatch("a", None, "nf4") is None


def test_auto_routing_goes_on_past_an_adapter_with_a_broken_card(manager, adapters_dir):
    from assistant.answering.routing import Router, Thresholds
    from tests.retrieval_helpers import HashEmbedder

    for name in ("alpha", "beta"):
        (adapters_dir / name / "profile.json").write_text(json.dumps(
            {"name": name, "description": "water fees", "examples": ["what is the water fee"]}))
    (adapters_dir / "beta" / "card.json").write_text("[")
    embedder = HashEmbedder()
    router = Router(adapters_dir, embedder.embed_documents, Thresholds(0.5, 0.4),
                    usable=lambda name: manager.info(name).ok)
    decision = router.decide(embedder.embed_query("what is the water fee"), [])
    assert decision.adapter == "alpha" and "adapter:beta" not in decision.scores


@pytest.mark.parametrize("how", ["not utf-8", "wrong types", "a directory"])
def test_the_router_skips_a_malformed_profile(adapters_dir, how):
    from assistant.answering.routing import Router, Thresholds
    from tests.retrieval_helpers import HashEmbedder

    (adapters_dir / "alpha" / "profile.json").write_text(json.dumps(
        {"name": "alpha", "description": "water fees", "examples": ["what is the water fee"]}))
    broken = adapters_dir / "beta" / "profile.json"
    if how == "a directory":
        broken.mkdir()
    else:
        write_broken(broken, how)
    embedder = HashEmbedder()
    router = Router(adapters_dir, embedder.embed_documents, Thresholds(0.5, 0.4))
    assert set(router.adapter_scores(embedder.embed_query("fee"))) == {"alpha"}


def test_every_mode_answers_with_a_broken_card_beside_a_good_adapter(tmp_path, tiny_base,
                                                                      adapters_dir):
    from assistant.models.generation import SamplingParams
    from tests.tiny_models import tiny_services

    services = tiny_services(tmp_path, tiny_base, adapters_dir,
                             "# Fees\n\nThe new connection fee is 148.50 pounds.\n",
                             router_retrieval_threshold=0.3, router_adapter_threshold=0.5)
    (adapters_dir / "alpha" / "profile.json").write_text(json.dumps(
        {"name": "alpha", "description": "connection fee", "examples": ["new connection fee"]}))
    (adapters_dir / "beta" / "card.json").write_text('["not", "a", "card"]')
    params = SamplingParams(max_new_tokens=3)
    question = "What is the new connection fee?"
    for mode in ("auto", "prompt", "base"):
        assert services.pipeline.ask(question, mode=mode, params=params).completion_tokens > 0
    for mode in ("adapter", "layered"):
        answer = services.pipeline.ask(question, mode=mode, adapter="alpha", params=params)
        assert answer.adapter == "alpha"
    with pytest.raises(AdapterError, match="'beta': card.json must hold a JSON object"):
        services.pipeline.ask(question, mode="adapter", adapter="beta", params=params)


def test_cli_lists_adapters_and_names_the_refused_one(adapters_dir, monkeypatch, capsys):
    from assistant.cli import main
    from assistant.settings import get_settings
    from tests.tiny_models import TINY_BASE

    (adapters_dir / "beta" / "card.json").write_text("{oops")
    monkeypatch.setenv("ASSISTANT_ADAPTERS_DIR", str(adapters_dir))
    monkeypatch.setenv("ASSISTANT_BASE_MODEL", TINY_BASE)
    get_settings.cache_clear()
    try:
        assert main(["adapters", "--json"]) == 0
        rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["adapters"]}
        assert main(["adapters"]) == 0
        text = capsys.readouterr().out
    finally:
        get_settings.cache_clear()
    assert rows["alpha"]["ok"] and not rows["beta"]["ok"]
    assert "card.json is not valid JSON" in rows["beta"]["problem"]
    assert "REFUSED: adapter 'beta': card.json is not valid JSON" in text


# --- the Card ------------------------------------------------------------------------------
def test_card_read_is_none_without_a_card_and_refuses_a_malformed_one(tmp_path):
    from assistant.models.adapter_folder import Card

    folder = tmp_path / "gamma"
    folder.mkdir()
    assert Card.read(folder) is None
    for how, reason in [("not json", "not valid JSON"), ("a list", "must hold a JSON object"),
                        ("wrong types", "wrong type for system_prompt"),
                        ("not utf-8", "not valid JSON")]:
        write_broken(folder / "card.json", how)
        with pytest.raises(AdapterError, match=f"adapter 'gamma': card.json.*{reason}"):
            Card.read(folder)
    (folder / "card.json").write_text(json.dumps({"steps": True}))  # true is no count
    with pytest.raises(AdapterError, match="wrong type for steps"):
        Card.read(folder)


def test_set_evaluation_writes_card_json_and_only_card_mds_evaluation(tmp_path):
    from assistant.models.adapter_folder import Card

    folder = tmp_path / "gamma"
    folder.mkdir()
    (folder / "card.json").write_text(json.dumps({"name": "gamma", "eval": None, "extra": 1}))
    (folder / "card.md").write_text("# Adapter `gamma`\n\n## Evaluation\n\nNot evaluated yet.\n\n"
                                    "## Example questions\n\n- fee?\n")
    card = Card.read(folder)
    card.set_evaluation({"adapter_recall": 0.5})
    assert card.write(folder) == folder / "card.json"
    again = Card.read(folder)
    assert again.evaluation == {"adapter_recall": 0.5} and again.get("extra") == 1
    md = (folder / "card.md").read_text()
    assert md.count("## Evaluation") == 1 and '"adapter_recall": 0.5' in md
    assert "Not evaluated yet" not in md and md.endswith("## Example questions\n\n- fee?\n")
    with pytest.raises(AdapterError):
        card.set_evaluation([0.5])


def test_the_one_card_writer_reproduces_the_bundled_adapters_card_md():
    from pathlib import Path

    from assistant.models.adapter_folder import Card, read_profile, render_markdown

    folder = Path(__file__).resolve().parents[2] / "adapters" / "harrowgate-water"
    card = Card.read(folder)
    assert render_markdown(card, read_profile(folder)) == (folder / "card.md").read_text()


# --- loading and unloading are admin actions when ASSISTANT_ADMINS is set ----------------
class _Adapters:
    def __init__(self):
        self.calls = []

    def load(self, name):
        self.calls.append(("load", name))
        return 0.01

    def unload(self, name):
        self.calls.append(("unload", name))
        return True


def _context(admins: str):
    from types import SimpleNamespace

    from assistant.access import Access
    from assistant.settings import Settings
    from assistant.ui.common import Context

    settings = Settings(admins=admins, auth="root:pw,bob:pw")
    adapters = _Adapters()  # Services.load_adapter loads onto the local base: adapters.load
    return Context(services=SimpleNamespace(adapters=adapters, load_adapter=adapters.load,
                                            unload_adapter=adapters.unload),
                   access=Access(settings))


@pytest.mark.parametrize("handler", ["load_adapter", "unload_adapter"])
def test_loading_and_unloading_adapters_are_admin_actions(handler):
    from types import SimpleNamespace

    import gradio as gr

    from assistant.ui import adapters as tab

    bob = SimpleNamespace(username="bob", session_hash="s1")
    root = SimpleNamespace(username="root", session_hash="s2")
    ctx = _context(admins="root")
    with pytest.raises(gr.Error, match="only admins may"):
        getattr(tab, handler)(ctx, "alpha", bob)
    assert ctx.services.adapters.calls == []
    assert "alpha" in getattr(tab, handler)(ctx, "alpha", root)
    assert ctx.services.adapters.calls == [(handler.split("_")[0], "alpha")]
    open_ctx = _context(admins="")  # no admin list: every visitor may
    assert "alpha" in getattr(tab, handler)(open_ctx, "alpha", bob)


def test_a_tool_adapter_loads_by_name_but_is_in_no_list_users_pick_from(manager, adapters_dir):
    (adapters_dir / "beta" / "card.json").write_text(json.dumps(
        {"name": "beta", "hyperparameters": {"routable": False}}))
    assert manager.names() == ["alpha"] and [i.name for i in manager.list()] == ["alpha"]
    assert manager.check("beta")  # synth still asks it by name
    (adapters_dir / "beta" / "card.json").write_text(json.dumps(
        {"name": "beta", "hyperparameters": {"routable": True}}))
    assert manager.names() == ["alpha", "beta"]



def test_a_deferred_base_loads_its_weights_once_at_first_use(adapters_dir, tiny_base):
    """An app served by llama.cpp opens the base without its torch weights; the adapter
    manager loads them when something uses the torch model, once, whichever thread asks."""
    from dataclasses import replace

    loads = []

    def loader():
        loads.append(1)
        return tiny_base

    deferred = replace(tiny_base, model=None, loader=loader)
    manager = AdapterManager(adapters_dir, deferred)
    assert manager.check("alpha") and deferred.model is None  # checks need no weights
    threads = [threading.Thread(target=logits, args=(manager, name))
               for name in ("alpha", None, "beta")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == [1] and deferred.model is tiny_base.model
