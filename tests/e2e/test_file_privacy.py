"""Who may fetch which file from the served app (issue 15, item 3): two logged-in users and
an anonymous visitor try each other's uploads and exports through Gradio's file route.

Everything goes over plain HTTP, as a hostile visitor would: log in, ``POST /upload``,
``/call/<api>``, then ``GET /gradio_api/file=<path>`` with another visitor's path.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import httpx
import pytest
from gradio.utils import get_upload_folder

pytestmark = pytest.mark.e2e

BEES = "# Bee keeping\n\n## Inspections\n\nThe Wexcombe hive is inspected every Sunday at noon.\n"
HIVE_QUESTION = "When is the Wexcombe hive inspected?"
REFUSED = (401, 403, 404)


class CallError(Exception):
    """A /call that ended with Gradio's error event (a gr.Error in the handler)."""


class Browser:
    """One visitor's HTTP session: its own cookie jar, logged in or not."""

    def __init__(self, url: str, user: str | None = None, password: str = "") -> None:
        self.http = httpx.Client(base_url=url, timeout=120)
        if user:
            self.http.post("/login", data={"username": user, "password": password}
                           ).raise_for_status()

    def upload(self, name: str, content: bytes) -> str:
        """The server's path of the uploaded file (in Gradio's upload cache)."""
        reply = self.http.post("/gradio_api/upload", files=[("files", (name, content))])
        reply.raise_for_status()
        return reply.json()[0]

    def call(self, api_name: str, *data: object) -> list:
        reply = self.http.post(f"/gradio_api/call/{api_name}", json={"data": list(data)})
        reply.raise_for_status()
        event_id = reply.json()["event_id"]
        lines = self.http.get(f"/gradio_api/call/{api_name}/{event_id}").text.splitlines()
        for event, payload in itertools.pairwise(lines):
            if event == "event: complete":
                return json.loads(payload.removeprefix("data: "))
            if event == "event: error":
                raise CallError(payload.removeprefix("data: "))
        raise AssertionError(f"no result from /{api_name}: {lines}")

    def fetch(self, path: str) -> httpx.Response:
        return self.http.get(f"/gradio_api/file={path}")

    def close(self) -> None:
        self.http.close()


def file_data(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def source_names(details: dict) -> list[str]:
    return [s["name"] for s in details["sources"]]


@pytest.fixture(scope="module")
def login_app(tiny_app_factory):
    return tiny_app_factory(auth="alice:wonderland,bob:builder", admins="alice",
                            private_uploads=True)


@pytest.fixture()
def visitors(login_app):
    url = login_app[1]
    made = [Browser(url, "alice", "wonderland"), Browser(url, "bob", "builder"), Browser(url)]
    yield made
    for browser in made:
        browser.close()


def test_an_ingested_upload_is_served_to_nobody_and_stays_searchable(login_app, visitors):
    alice, bob, anonymous = visitors
    path = alice.upload("bees.md", BEES.encode())
    assert Path(path).is_file()
    assert bob.fetch(path).status_code in REFUSED  # not even while it waits to be ingested
    results, *_ = alice.call("upload", [file_data(path)], "")
    assert results["data"][0][:2] == ["bees.md", "ingested 1 chunk"]
    assert not Path(path).exists()  # gone from Gradio's upload cache
    for who in (bob, anonymous, alice):
        assert who.fetch(path).status_code in REFUSED
    _, _, seen, *_ = alice.call("chat", HIVE_QUESTION, [], "prompt", "")  # *_: chat state
    _, _, unseen, *_ = bob.call("chat", HIVE_QUESTION, [], "prompt", "")
    assert "bees.md" in source_names(seen) and "bees.md" not in source_names(unseen)


def test_an_upload_refused_to_a_non_admin_is_not_kept(visitors):
    _, bob, _ = visitors
    path = bob.upload("notes.md", b"# Notes\n\nBob's private notes on the lodge.\n")
    with pytest.raises(CallError, match="only admins may upload documents"):
        bob.call("upload", [file_data(path)], "")
    assert not Path(path).exists()


def test_an_export_is_served_only_to_the_user_who_made_it(visitors):
    alice, bob, anonymous = visitors
    alice.call("chat", "How much is a fishing permit?", [], "base", "")
    exported = alice.call("export_csv")[0]
    exported = exported.get("value", exported)  # a gr.File update or its value
    path = exported["path"]
    assert bob.fetch(path).status_code in REFUSED
    assert anonymous.fetch(path).status_code in REFUSED
    mine = alice.fetch(path)
    assert mine.status_code == 200 and "cost_usd" in mine.text.splitlines()[0]
    assert alice.fetch(path).status_code == 200  # the owner may fetch it again


def test_the_file_route_refuses_the_data_knowledge_and_adapter_folders(login_app, visitors):
    settings = login_app[0].settings
    alice = visitors[0]
    for private in (Path(settings.data_dir) / "ledger.db",
                    next(Path(settings.knowledge_dir).rglob("*.md")),
                    next(Path(settings.adapters_dir).rglob("*.json"))):
        assert private.is_file()
        assert alice.fetch(str(private)).status_code in REFUSED, private


def test_a_rejected_upload_names_the_file_not_its_server_path(visitors):
    alice = visitors[0]
    path = alice.upload("random.docx", bytes(range(256)) * 8)
    results, *_ = alice.call("upload", [file_data(path)], "")
    name, outcome = results["data"][0][:2]
    assert name == "random.docx" and outcome.startswith("rejected: ")
    for secret in (path, str(Path(path).parent), get_upload_folder()):
        assert secret not in outcome, outcome
    assert not Path(path).exists()


def test_an_anonymous_export_is_served_once_to_its_session(tiny_app_factory):
    _, url = tiny_app_factory(private_uploads=True)
    visitor = Browser(url)
    try:
        visitor.call("chat", "How much is a fishing permit?", [], "base", "")
        exported = visitor.call("export_csv")[0]
        path = exported.get("value", exported)["path"]
        assert "cost_usd" in visitor.fetch(path).text
        assert visitor.fetch(path).status_code in REFUSED  # fetched once, then gone
        deadline = time.monotonic() + 10  # deleted once the server has finished sending
        while Path(path).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(path).exists()
    finally:
        visitor.close()


def test_training_pairs_leave_the_upload_cache_once_kept(tiny_app_factory, e2e_tiny_dir):
    services, url = tiny_app_factory(base_model=str(e2e_tiny_dir / "base"), train_batch_size=4,
                                     train_rank=4, train_alpha=8)
    pairs = "".join(f'{{"question": "Who sells permits? ({n})", "answer": "The lodge"}}\n'
                    for n in range(8))
    visitor = Browser(url)
    try:
        path = visitor.upload("permits.jsonl", pairs.encode())
        status, _ = visitor.call("train_adapter", "permits", file_data(path), 1, False)
        assert "Trained" in status, status
        assert not Path(path).exists() and visitor.fetch(path).status_code in REFUSED
        assert (Path(services.settings.data_dir) / "training-data" / "permits.jsonl").is_file()
    finally:
        visitor.close()
