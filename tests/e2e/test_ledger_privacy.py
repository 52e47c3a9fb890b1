"""Whose answers each visitor reads and votes on (issue 28, items 1 and 2): two real
logins, an admin and not, and two anonymous sessions of an open app, each a gradio_client
of the served app. Private uploads stay off (the default): reading the ledger is not tied
to them.
"""

from __future__ import annotations

import csv

import pytest

pytestmark = pytest.mark.e2e

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

ALICE_Q = "How much is a fishing permit for alice?"
BOB_Q = "When does the Kestle Top car park open for bob?"


def ask(client: Client, question: str) -> str:
    """The ledger id of the answer to ``question``."""
    _, _, details = client.predict(question, [], "base", "", api_name="/chat")
    return details["ledger_id"]


def recent_questions(client: Client) -> list[str]:
    summary, *_, recent = client.predict(api_name="/metrics")
    return [row[3] for row in recent["data"]]


def exported(client: Client) -> list[dict[str, str]]:
    path = client.predict(api_name="/export_csv")
    path = path["value"] if isinstance(path, dict) else path  # a gr.File update
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def logins(tiny_app_factory):
    services, url = tiny_app_factory(auth="alice:alicepw,bob:bobpw", admins="alice")
    alice = Client(url, auth=("alice", "alicepw"), verbose=False)
    bob = Client(url, auth=("bob", "bobpw"), verbose=False)
    return services, alice, bob, ask(alice, ALICE_Q), ask(bob, BOB_Q)


def test_a_user_reads_only_their_own_answers_and_export(logins):
    _, _, bob, alice_id, bob_id = logins
    assert recent_questions(bob) == [BOB_Q]
    rows = exported(bob)
    assert [r["id"] for r in rows] == [bob_id]
    assert ALICE_Q not in str(rows) and alice_id not in str(rows)


def test_the_figures_pool_numbers_and_say_so(logins):
    _, _, bob, *_ = logins
    summary = bob.predict(api_name="/metrics")[0]
    assert "**2** answers" in summary  # both users' answers, as numbers
    assert "numbers only" in summary and "yours only" in summary


def test_an_admin_reads_the_whole_ledger(logins):
    _, alice, _, alice_id, bob_id = logins
    assert set(recent_questions(alice)) == {ALICE_Q, BOB_Q}
    assert {r["id"] for r in exported(alice)} == {alice_id, bob_id}


def test_feedback_only_on_your_own_answers(logins):
    services, alice, bob, alice_id, bob_id = logins
    with pytest.raises(AppError, match="no such answer among yours"):
        bob.predict(alice_id, "dislike", "", api_name="/feedback")
    with pytest.raises(AppError, match="no such answer among yours"):
        alice.predict(bob_id, "like", "", api_name="/feedback")  # an admin too
    assert services.votes.feedback_for(alice_id) == []
    bob.predict(bob_id, "like", "fine", api_name="/feedback")
    assert [v["owner"] for v in services.votes.feedback_for(bob_id)] == ["bob"]


def test_an_anonymous_session_reads_only_its_own_answers(tiny_app_factory):
    _, url = tiny_app_factory()
    first, second = Client(url, verbose=False), Client(url, verbose=False)
    first_id = ask(first, ALICE_Q)
    second_id = ask(second, BOB_Q)
    assert recent_questions(second) == [BOB_Q]
    assert [r["id"] for r in exported(second)] == [second_id]
    with pytest.raises(AppError, match="no such answer among yours"):
        second.predict(first_id, "dislike", "", api_name="/feedback")
