"""Conversations and human judgement through the served web app, with gradio_client:
follow-ups carry the history, chats are saved and reopened after a restart, feedback and
arena votes land in the ledger with the answers' ids (tiny model, hashing embedder)."""

from __future__ import annotations

import shutil

import pytest

from assistant.services import Services
from assistant.settings import Settings
from tests.e2e.conftest import demo_knowledge, serve_app
from tests.retrieval_helpers import HashEmbedder
from tests.tiny_models import tiny_loaded

pytestmark = pytest.mark.e2e

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

QUESTION = "When does the Kestle Top car park open?"
FOLLOW_UP = "And when does it close?"


def texts(history: list[dict]) -> list[str]:
    return [part["text"] for m in history for part in m["content"] if part.get("type") == "text"]


@pytest.fixture(scope="module")
def app(tiny_app_factory):
    return tiny_app_factory()


def owner(client: Client) -> str:
    return f"session:{client.session_hash}"


def test_a_follow_up_reaches_the_pipeline_with_the_history_and_both_turns_are_saved(app):
    services, url = app
    client = Client(url, verbose=False)
    history, _, first = client.predict(QUESTION, [], "prompt", "", api_name="/chat")
    assert first["history_turns"] == 0 and first["ledger_id"]
    history, _, second = client.predict(FOLLOW_UP, history, "prompt", "", api_name="/chat")
    assert second["history_turns"] == 2  # the first question and its answer
    assert second["standalone_query"] and "Kestle" in second["standalone_query"]
    row = next(r for r in services.ledger.rows() if r["id"] == second["ledger_id"])
    assert row["standalone_query"] == second["standalone_query"]
    saved = services.conversations.list(owner(client))
    assert len(saved) == 1 and saved[0].turns == 4 and saved[0].title == QUESTION
    messages = services.conversations.get(owner(client), saved[0].id).messages
    assert [m["role"] for m in messages] == ["user", "assistant"] * 2
    assert [m["answer_id"] for m in messages[1::2]] == [first["ledger_id"], second["ledger_id"]]
    assert messages[2]["content"] == FOLLOW_UP
    assert "TTFT" not in messages[1]["content"]  # the answer, not its stats footer


def test_feedback_is_stored_against_the_answers_ledger_id(app):
    services, url = app
    client = Client(url, verbose=False)
    _, _, details = client.predict(QUESTION, [], "base", "", api_name="/chat")
    answer = details["ledger_id"]
    status = client.predict(answer, "dislike", "It never says the hours.",
                               api_name="/feedback")
    assert "dislike" in status
    votes = services.votes.feedback_for(answer)
    assert [(v["owner"], v["value"], v["comment"]) for v in votes] == [
        (owner(client), "dislike", "It never says the hours.")]


def test_an_arena_vote_is_stored_with_both_answer_ids_and_reveals_the_strategies(app):
    services, url = app
    client = Client(url, verbose=False)
    before = len(services.votes.battles())
    head_a, head_b, cell_a, cell_b, result = client.predict(
        "How much is a fishing permit?", api_name="/arena")
    assert (head_a, head_b) == ("### A", "### B") and "Vote below" in result
    assert "TTFT" not in cell_a + cell_b  # no route or stats line gives a side away
    head_a, head_b, cell_a, cell_b, result = client.predict(api_name="/arena_vote_b")
    battles = services.votes.battles()
    assert len(battles) == before + 1
    battle = battles[-1]
    assert battle["winner"] == "b" and battle["owner"] == owner(client)
    ids = {r["id"] for r in services.ledger.rows()}
    assert {battle["a_answer_id"], battle["b_answer_id"]} <= ids
    assert battle["a_answer_id"] != battle["b_answer_id"]
    assert battle["a_strategy"] != battle["b_strategy"]
    assert head_a.startswith("### A · ") and "TTFT" in cell_a and "You voted" in result
    summary, table, _plot = client.predict(api_name="/win_rates")
    assert "**1** blind vote." in summary and len(table["data"]) == 2


def test_a_saved_conversation_is_reopened_and_continued_after_a_restart(e2e_tiny_dir,
                                                                        tmp_path):
    root = tmp_path / "app"
    shutil.copytree(e2e_tiny_dir / "adapters", root / "adapters")
    knowledge = demo_knowledge(root / "knowledge")

    def start():
        settings = Settings(data_dir=root / "data", adapters_dir=root / "adapters",
                            knowledge_dir=knowledge, base_model="tiny-llama",
                            max_new_tokens=8, repetition_penalty=1.0, chunk_size=300,
                            chunk_overlap=30, score_threshold=0.0, auth="alice:wonderland")
        services = Services(settings, base=tiny_loaded(e2e_tiny_dir / "base"),
                            embedder=HashEmbedder())
        return services, *serve_app(services)

    services, server, url = start()
    try:
        alice = Client(url, auth=("alice", "wonderland"), verbose=False)
        history, _, first = alice.predict(QUESTION, [], "base", "", api_name="/chat")
        saved = services.conversations.list("alice")
        assert len(saved) == 1
    finally:
        server.close()
    services, server, url = start()
    try:
        alice = Client(url, auth=("alice", "wonderland"), verbose=False)
        alice.predict(api_name="/conversations")  # what the sidebar lists on page load
        reopened, title, _, _ = alice.predict(saved[0].id, api_name="/open_conversation")
        assert texts(reopened)[0] == QUESTION and title == QUESTION
        assert texts(reopened)[1] == texts(history)[1].split("\n\n<small")[0]
        _, _, second = alice.predict(FOLLOW_UP, reopened, "base", "", api_name="/chat")
        assert second["history_turns"] == 2
        again = services.conversations.list("alice")
        assert [c.id for c in again] == [saved[0].id] and again[0].turns == 4
        messages = services.conversations.get("alice", saved[0].id).messages
        assert messages[1]["answer_id"] == first["ledger_id"]
        assert messages[3]["answer_id"] == second["ledger_id"]
        bob = Client(url, auth=("alice", "wonderland"), verbose=False)  # another page
        _, _, details = bob.predict(QUESTION, [], "base", "", api_name="/chat")
        assert len(services.conversations.list("alice")) == 2  # a new chat, same owner
    finally:
        server.close()
