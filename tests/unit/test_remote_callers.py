"""With a remote backend (vLLM), everything that writes text for the user goes to the server
and nothing builds the local model: the app's start-up, synth's rewordings, the evaluation's
warm-up and runs, and `assistant chat`. Before issue 30 each of these built the local
``Generator`` over the served base (no weights) and died with an AttributeError.

The server is the scripted OpenAI-compatible one of test_backends.py; the services are
wired as `assistant serve` wires them, with the hashing embedder.
"""

from __future__ import annotations

import io
import json
import shutil

import pytest

from assistant.backends.logprobs import ServerLikelihood
from assistant.services import Services
from assistant.settings import Settings
from tests.retrieval_helpers import HashEmbedder
from tests.unit.test_backends import DEMO, ROOT, URL, FakeServer, build

FEES = "# Fees\n\nThe new connection fee is 148.50 pounds. Applications take 17 working days.\n"


@pytest.fixture
def server():
    return FakeServer(pieces=("The new connection fee", " is 148.50 pounds."))


def remote_services(tmp_path, server: FakeServer) -> Services:
    """Services on the openai backend, its server scripted; the demo adapter on disk and
    one document as the demo knowledge."""
    adapters = tmp_path / "adapters"
    shutil.copytree(ROOT / "adapters" / DEMO, adapters / DEMO)
    backend = build(server, adapters)
    backend.scorer = ServerLikelihood(backend.http, backend.model, lambda: None, enabled=False)
    knowledge = tmp_path / "knowledge" / "water" / "docs"
    knowledge.mkdir(parents=True)
    (knowledge / "fees.md").write_text(FEES)
    settings = Settings(_env_file=None, backend="openai", backend_url=URL,
                        backend_model="smollm2-135m", data_dir=tmp_path / "data",
                        adapters_dir=adapters, knowledge_dir=tmp_path / "knowledge")
    return Services(settings, backend=backend, embedder=HashEmbedder())


@pytest.fixture
def remote(tmp_path, server):
    services = remote_services(tmp_path, server)
    yield services
    assert "generator" not in services._parts  # the local generator was never built
    assert services.base.model is None  # and no weights were loaded


def chats(server: FakeServer) -> list[dict]:
    return [body for path, body in server.requests if path == "/chat/completions"]


def test_the_apps_start_up_prepares_the_remote_backend_not_a_local_model(remote):
    from assistant.server import prepare

    prepare(remote)  # was: services.generator -> AttributeError on the served base
    assert remote.store.count() > 0  # the demo knowledge (here: knowledge_dir) is in


def test_synth_rewordings_are_written_by_the_server(remote, server):
    from assistant.training.from_domain import model_ask

    ask = model_ask(remote, temperature=0.8, seed=5, progress_bar=False)
    assert ask(["What is the fee?", "How long is it?"]) == [
        "The new connection fee is 148.50 pounds."] * 2
    sent = chats(server)
    assert [b["seed"] for b in sent] == [5, 6] and all(b["temperature"] == 0.8 for b in sent)


def test_the_evaluation_warms_up_and_answers_through_the_server(remote, server, tmp_path):
    from assistant.evaluation.run import evaluate

    questions = tmp_path / "qa.jsonl"
    questions.write_text(json.dumps({"question": "What is the new connection fee?",
                                     "answer": "148.50 pounds", "must_contain": ["148.50"]})
                         + "\n")
    summary = evaluate(remote, questions, tmp_path / "out", modes="base,adapter", adapter=DEMO,
                       max_new_tokens=8, update_card=False, show_bar=False)
    assert summary["per_mode"]["adapter"]["recall"] == 1.0
    models = [b["model"] for b in chats(server)]
    assert models[:2] == ["smollm2-135m", DEMO]  # the warm-up, base then the adapter
    assert all(b["temperature"] == 0.0 for b in chats(server))


def test_the_conversations_evaluation_runs_on_the_server(remote, server, tmp_path):
    from assistant.evaluation.conversations import evaluate_conversations

    remote.ingestor.ingest([ROOT / "knowledge" / DEMO / "docs" / "tariffs-and-fees.md"],
                           domain="water")
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "fee", "turns": [
        {"question": "What is the new connection fee?", "must_contain": ["148.50"]},
        {"question": "Is it the same in winter?", "must_contain": ["148.50"],
         "standalone": "Is the new connection fee the same in winter?"}]}) + "\n")
    summary = evaluate_conversations(remote, path, tmp_path / "out", modes="prompt",
                                     max_new_tokens=8, show_bar=False)
    assert summary["n_follow_ups"] == 1 and len(chats(server)) >= 2


def test_the_terminal_chat_answers_through_the_server(remote, server, monkeypatch, capsys):
    from assistant import cli

    monkeypatch.setattr("assistant.commands.chat._services", lambda: remote)
    monkeypatch.setattr("sys.stdin", io.StringIO("What is the new connection fee?\n"))
    assert cli.main(["chat", "--mode", "base", "--max-new-tokens", "6", "--json"]) == 0
    (answer,) = json.loads(capsys.readouterr().out)["answers"]
    assert "148.50" in answer["text"]
    assert chats(server)[-1]["max_tokens"] == 6


def test_the_adapters_tabs_load_button_registers_the_adapter_with_the_server(remote, server):
    from assistant.access import Access
    from assistant.ui.adapters import load_adapter
    from assistant.ui.common import Context
    from tests.unit.ui_fakes import request

    server.served.discard(DEMO)
    ctx = Context(remote, Access(remote.settings))
    assert load_adapter(ctx, DEMO, request()).startswith(f"**{DEMO}** is loaded")
    assert ("/load_lora_adapter", {"lora_name": DEMO, "lora_path": f"/srv/adapters/{DEMO}"}) \
        in server.requests
