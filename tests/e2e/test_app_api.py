"""The served app driven through its API with gradio_client (tiny model, hashing embedder)."""

from __future__ import annotations

import csv

import pytest

pytestmark = pytest.mark.e2e

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

QUESTION = "When does the Kestle Top car park open?"
BEES = "# Bee keeping\n\n## Inspections\n\nThe Wexcombe hive is inspected every Sunday at noon.\n"


def names(table: dict) -> list[str]:
    return [row[0] for row in table["data"]]


def message_texts(history: list[dict]) -> list[str]:
    return [part["text"] for m in history for part in m["content"] if part.get("type") == "text"]


@pytest.fixture(scope="module")
def shared_app(tiny_app_factory):
    return tiny_app_factory()


@pytest.fixture(scope="module")
def client(shared_app):
    return Client(shared_app[1], verbose=False)


@pytest.mark.parametrize("mode", ["auto", "prompt", "adapter", "layered", "base"])
def test_chat_answers_in_every_mode_with_route_stats_and_sources(client, mode):
    history, cleared, details = client.predict(QUESTION, [], mode, "", api_name="/chat")
    assert cleared == ""
    assert details["requested_mode"] == mode and details["completion_tokens"] > 0
    if mode != "auto":
        assert details["mode"] == mode
    assert (details["adapter"] == "alpha") == (details["mode"] in ("adapter", "layered"))
    answer = history[1]["content"][0]["text"]
    for stat in ("TTFT", "total", "tokens", "in /", "out", "cost $", details["reason"]):
        assert stat in answer
    has_sources = details["mode"] in ("prompt", "layered")
    assert bool(details["sources"]) == has_sources
    if has_sources:  # the answer check ran; a replaced answer says so
        assert details["grounding"] in ("grounded", "declined") or (
            details["grounding"].startswith("quoted"))
        assert (details["generated"] is not None) == ("quoted instead of the model" in answer)
    else:
        assert details["grounding"] is None and details["generated"] is None
    if has_sources:
        assert history[-1]["metadata"]["title"].startswith("Sources (")
        assert "reservoir-rules.md" in history[-1]["content"][0]["text"]
        assert "score" in history[-1]["content"][0]["text"]


def test_chat_refuses_an_unknown_adapter_clearly(client):
    history, _, details = client.predict(QUESTION, [], "adapter", "ghost", api_name="/chat")
    assert "unknown adapter 'ghost'" in details["error"]
    assert "Could not answer" in message_texts(history)[-1]


def test_compare_answers_every_mode_with_a_table(client):
    *cells, table = client.predict("How much is a fishing permit?", "", api_name="/compare")
    assert len(cells) == 4 and all("TTFT" in cell for cell in cells)
    assert [row[0] for row in table["data"]] == ["Prompt+RAG", "Adapter", "Layered", "Base"]
    assert all(row[4] > 0 and row[5] > 0 and row[6].startswith("$") for row in table["data"])


def test_upload_list_ask_and_delete(client, tmp_path):
    doc = tmp_path / "bees.md"
    doc.write_text(BEES)
    results, documents, _, _ = client.predict([handle_file(str(doc))], "", api_name="/upload")
    assert results["data"] == [["bees.md", "ingested 1 chunk", 1, "general"]]
    assert "bees.md" in names(documents)
    listed, _ = client.predict(api_name="/list_documents")
    assert set(names(listed)) == {"reservoir-rules.md", "bees.md"}
    _, _, details = client.predict("When is the Wexcombe hive inspected?", [], "prompt", "",
                                   api_name="/chat")
    assert details["sources"][0]["name"] == "bees.md"
    after, _, message = client.predict("bees.md", api_name="/delete_document")
    assert "Deleted **bees.md**" in message and names(after) == ["reservoir-rules.md"]
    with pytest.raises(AppError, match="no document named 'bees.md'"):
        client.predict("bees.md", api_name="/delete_document")


def test_rejected_uploads_give_their_reason_and_change_nothing(client, shared_app, tmp_path):
    services = shared_app[0]
    before = (services.store.count(), [d.name for d in services.store.list_documents()])
    empty, program = tmp_path / "empty.txt", tmp_path / "setup.exe"
    empty.write_text("")
    program.write_bytes(b"MZ\x90\x00")
    results, documents, _, _ = client.predict(
        [handle_file(str(empty)), handle_file(str(program))], "", api_name="/upload")
    assert results["data"][0] == ["empty.txt", "rejected: empty file", 0, ""]
    assert results["data"][1][0] == "setup.exe"
    assert results["data"][1][1].startswith("rejected: unsupported file type '.exe'")
    assert (services.store.count(), names(documents)) == before


def test_adapters_list_load_and_unload(client):
    table, choices, _ = client.predict(api_name="/adapters")
    row = dict(zip(table["headers"], table["data"][0]))
    assert row["adapter"] == "alpha" and row["status"] == "ok"
    assert row["rank"] == 4 and row["target modules"] == "q_proj, v_proj"
    table, message = client.predict("alpha", api_name="/unload_adapter")
    assert dict(zip(table["headers"], table["data"][0]))["loaded"] == "no"
    table, message = client.predict("alpha", api_name="/load_adapter")
    assert "is loaded" in message
    assert dict(zip(table["headers"], table["data"][0]))["loaded"] == "yes"
    with pytest.raises(AppError, match="unknown adapter"):
        client.predict("ghost", api_name="/load_adapter")


def test_metrics_and_csv_export_cover_the_visitors_answers(shared_app):
    client = Client(shared_app[1], verbose=False)  # a fresh session: its own answers only
    client.predict(QUESTION, [], "base", "", api_name="/chat")
    summary, latency, tokens, cost, recent = client.predict(api_name="/metrics")
    count = len(shared_app[0].ledger.rows())  # the figures pool every visitor's numbers
    assert f"**{count}** answers" in summary and "numbers only" in summary
    assert all(plot["type"] == "matplotlib" for plot in (latency, tokens, cost))
    assert len(recent["data"]) == 1
    path = client.predict(api_name="/export_csv")
    path = path["value"] if isinstance(path, dict) else path  # a gr.File update
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and "cost_usd" in rows[0] and rows[0]["question"] == QUESTION


def test_two_visitors_at_once_are_both_answered(shared_app):
    services, url = shared_app
    before = len(services.ledger.rows())
    first, second = Client(url, verbose=False), Client(url, verbose=False)
    jobs = [c.submit(QUESTION, [], mode, "", api_name="/chat")
            for c, mode in ((first, "prompt"), (second, "adapter"))]
    details = [job.result(timeout=60)[2] for job in jobs]
    assert [d["mode"] for d in details] == ["prompt", "adapter"]
    rows = services.ledger.rows()[before:]
    assert len(rows) == 2 and len({r["session_id"] for r in rows}) == 2


# --- access and privacy -----------------------------------------------------------------
@pytest.fixture(scope="module")
def private_app(tiny_app_factory):
    return tiny_app_factory(private_uploads=True)


def test_private_uploads_are_invisible_to_other_sessions(private_app, tmp_path):
    services, url = private_app
    alice, bob = Client(url, verbose=False), Client(url, verbose=False)
    doc = tmp_path / "bees.md"
    doc.write_text(BEES)
    results, mine, _, _ = alice.predict([handle_file(str(doc))], "", api_name="/upload")
    assert results["data"][0][:2] == ["bees.md", "ingested 1 chunk"]
    assert results["data"][0][3] == "private (yours)"
    assert "bees.md" in names(mine)
    theirs, _ = bob.predict(api_name="/list_documents")
    assert names(theirs) == ["reservoir-rules.md"]  # the shared demo only
    question = "When is the Wexcombe hive inspected?"
    _, _, seen = alice.predict(question, [], "prompt", "", api_name="/chat")
    _, _, unseen = bob.predict(question, [], "prompt", "", api_name="/chat")
    assert "bees.md" in [s["name"] for s in seen["sources"]]
    assert "bees.md" not in [s["name"] for s in unseen["sources"]]
    with pytest.raises(AppError, match="no document named 'bees.md' among yours"):
        bob.predict("bees.md", api_name="/delete_document")
    with pytest.raises(AppError, match="only an admin may delete it"):
        bob.predict("reservoir-rules.md", api_name="/delete_document")
    # Both may upload a file of the same name without touching the other's.
    bob.predict([handle_file(str(doc))], "", api_name="/upload")
    stored = [d for d in services.store.list_documents() if d.name.endswith("bees.md")]
    assert len(stored) == 2 and len({d.domain for d in stored}) == 2


@pytest.fixture(scope="module")
def admin_app(tiny_app_factory):
    return tiny_app_factory(auth="alice:wonderland,bob:builder", admins="alice")


def test_only_admins_may_upload_or_delete(admin_app, tmp_path):
    _, url = admin_app
    doc = tmp_path / "bees.md"
    doc.write_text(BEES)
    bob = Client(url, auth=("bob", "builder"), verbose=False)
    with pytest.raises(AppError, match="only admins may upload documents"):
        bob.predict([handle_file(str(doc))], "", api_name="/upload")
    with pytest.raises(AppError, match="only admins may delete documents"):
        bob.predict("reservoir-rules.md", api_name="/delete_document")
    _, _, details = bob.predict(QUESTION, [], "base", "", api_name="/chat")  # may still ask
    assert details["completion_tokens"] > 0
    alice = Client(url, auth=("alice", "wonderland"), verbose=False)
    results, _, _, _ = alice.predict([handle_file(str(doc))], "", api_name="/upload")
    assert results["data"][0][1] == "ingested 1 chunk"


def test_login_is_required_when_auth_is_set(admin_app):
    # gradio_client raises AuthenticationError (a ValueError) on 401, ValueError on 400
    with pytest.raises(ValueError, match="Could not login"):
        Client(admin_app[1], auth=("bob", "wrong"), verbose=False)


# --- training from the browser ------------------------------------------------------------


def test_training_in_the_background_adds_an_adapter_to_the_chat_list(
        tiny_app_factory, e2e_tiny_dir, tmp_path):
    # base_model names the tiny model's folder, so training can load its own copy of it
    services, url = tiny_app_factory(base_model=str(e2e_tiny_dir / "base"), train_batch_size=4,
                                     train_rank=4, train_alpha=8)
    client = Client(url, verbose=False)
    pairs = tmp_path / "reservoir.jsonl"
    pairs.write_text("".join(
        f'{{"question": "{q} ({n})", "answer": "{a}"}}\n'
        for n in range(4) for q, a in (("When does the car park open?", "07:30"),
                                       ("How much is a fishing permit?", "12 pounds"),
                                       ("Who sells permits?", "The lodge")))
    )
    status, curve = client.predict("reservoir", handle_file(str(pairs)), 2, False,
                                   api_name="/train_adapter")
    assert "Trained" in status and "reservoir" in status, status
    assert curve["type"] == "matplotlib"  # the loss curve
    choices = client.predict(api_name="/adapter_choices")
    assert "reservoir" in str(choices)
    table, _, _ = client.predict(api_name="/adapters")
    assert "reservoir" in names(table)
    history, _, details = client.predict("When does the car park open?", [], "adapter",
                                         "reservoir", api_name="/chat")
    assert details["adapter"] == "reservoir" and not details.get("error")

    with pytest.raises(AppError, match="already exists"):  # refused at once, nothing lost
        client.predict("reservoir", handle_file(str(pairs)), 2, False, api_name="/train_adapter")
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"question": "only a question"}\n')
    with pytest.raises(AppError, match="broken.jsonl"):
        client.predict("other", handle_file(str(bad)), 2, False, api_name="/train_adapter")
    assert "Trained" in client.predict(api_name="/training_status")[0]
    assert client.predict(api_name="/cancel_training") == "No training is running."
    assert services.adapters.info("reservoir").ok
