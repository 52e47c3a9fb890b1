"""`assistant chat`, `assistant logs` and `assistant stats --votes`, driven like a user:
standard input in, standard output read, on a tiny model with a real pipeline and ledger."""

from __future__ import annotations

import io
import json
import signal

import pytest

from assistant import cli
from assistant.commands import chat
from assistant.services import Services
from assistant.settings import Settings
from tests.tiny_models import tiny_services

FEES = ("# Fees\n\n## Connection\n\nThe new connection fee is 148.50 pounds. Applications take "
        "17 working days.\n\n## Meters\n\nMeters are read every quarter.\n")
LAYERED = ("chat", "--mode", "layered", "--adapter", "alpha", "--max-new-tokens", "4")


@pytest.fixture
def services(tmp_path, tiny_base, adapters_dir, monkeypatch):
    services = tiny_services(tmp_path, tiny_base, adapters_dir, FEES)
    monkeypatch.setattr("assistant.commands.chat._services", lambda: services)
    monkeypatch.setattr("assistant.commands.logs._services", lambda: services)
    return services


@pytest.fixture
def run(monkeypatch, capsys):
    def run(*argv, stdin=""):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = cli.main(list(argv))
        return code, capsys.readouterr().out

    return run


def test_chat_saves_turns_uses_history_and_retries_and_edits(services, run):
    lines = ["What is the new connection fee?", "And how long do they take?", "!mode base",
             "!retry", "!edit What are meters?", "exit", "never read"]
    code, out = run(*LAYERED, "--json", stdin="\n".join(lines) + "\n")
    result = json.loads(out)  # --json: one object, no streamed text
    assert code == 0 and result["mode"] == "base"
    answers = result["answers"]
    assert [a["question"] for a in answers] == [
        "What is the new connection fee?", "And how long do they take?",
        "And how long do they take?", "What are meters?"]
    assert [a["mode"] for a in answers] == ["layered", "layered", "base", "base"]
    follow_up = services.ledger.answer(answers[1]["ledger_id"])
    assert "connection fee" in follow_up["standalone_query"]
    assert follow_up["history_turns"] == 2
    assert services.ledger.answer(answers[0]["ledger_id"])["standalone_query"] is None
    saved = services.conversations.get("cli", result["conversation_id"])
    assert [m["content"] for m in saved.messages[::2]] == [
        "What is the new connection fee?", "What are meters?"]  # retry and edit replaced
    assert [m["answer_id"] for m in saved.messages[1::2]] == [
        answers[0]["ledger_id"], answers[3]["ledger_id"]]
    assert saved.title == "What is the new connection fee?"


def test_chat_prints_answers_with_the_route_line_and_continues(services, run):
    code, out = run(*LAYERED, stdin="What is the new connection fee?\n")
    assert code == 0 and "chatting in layered mode, a new conversation" in out
    assert "route: layered (alpha) | layered: requested" in out and "tokens in" in out
    code, out = run(*LAYERED, "--continue", stdin="And when are meters read?\n!bogus\n")
    assert code == 0 and "(2 messages)" in out and "!retry" in out
    (info,) = services.conversations.list("cli")
    assert info.turns == 4
    last = services.ledger.recent(1)[0]
    assert last["history_turns"] == 2 and last["question"] == "And when are meters read?"


def test_ctrl_c_stops_the_answer_and_the_chat_goes_on(services, run, monkeypatch):
    shown = []

    def write_then_interrupt(piece, quiet):
        shown.append(piece)
        if len(shown) == 1:
            signal.raise_signal(signal.SIGINT)  # the user presses Ctrl+C mid-answer

    monkeypatch.setattr(chat, "_write_piece", write_then_interrupt)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the tests run as a background job
    code, out = run(*LAYERED, stdin="What is the new connection fee?\nWhat are meters?\n")
    assert code == 0 and "[stopped]" in out and "route: layered" in out
    stopped, answered = services.ledger.rows()
    assert stopped["error"] == "cancelled by the reader" and answered["error"] is None
    (info,) = services.conversations.list("cli")
    messages = services.conversations.get("cli", info.id).messages
    assert [m["role"] for m in messages] == ["user", "assistant"] * 2
    assert messages[1]["answer_id"] is None and messages[1]["content"] == shown[0].strip()
    assert messages[3]["answer_id"] == answered["id"]
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_chat_refuses_unknown_conversations(services, run):
    code, out = run("chat", "--continue", "--json")
    assert code == 2 and "no conversation to continue" in json.loads(out)["error"]
    theirs = services.conversations.create("someone-else", "private")
    code, out = run("chat", "--conversation", theirs, "--json")
    assert code == 2 and json.loads(out)["error"] == "no such conversation"


def test_logs_list_show_and_search(services, run):
    code, out = run(*LAYERED, "--json", stdin="What is the new connection fee?\nWhat about it?\n")
    conversation_id = json.loads(out)["conversation_id"]
    code, out = run("logs", "--json", "-n", "5")
    listing = json.loads(out)
    assert code == 0 and listing["text_stored"] is True
    assert [a["question"] for a in listing["answers"]] == [
        "What about it?", "What is the new connection fee?"]
    assert [c["id"] for c in listing["conversations"]] == [conversation_id]
    code, out = run("logs", "show", conversation_id, "--json")
    shown = json.loads(out)
    assert shown["kind"] == "conversation" and len(shown["messages"]) == 4
    route = shown["messages"][3]["route"]
    assert route["chosen_mode"] == "layered" and route["adapter"] == "alpha"
    assert "connection fee" in route["standalone_query"]
    answer_id = shown["messages"][1]["answer_id"]
    code, out = run("logs", "show", answer_id, "--json")
    assert json.loads(out)["answer"]["id"] == answer_id
    code, out = run("logs", "show", conversation_id)
    assert "user: What about it?" in out and "route: layered (alpha)" in out
    code, out = run("logs", "search", "connection", "fee", "--json")
    assert [a["id"] for a in json.loads(out)["answers"]][-1] == answer_id
    code, out = run("logs", "list")
    assert "What is the new connection fee?" in out and "conversations of cli" in out
    code, out = run("logs", "show", "nope", "--json")
    assert code == 2 and "no answer or conversation" in json.loads(out)["error"]
    code, out = run("logs", "search", "--json")
    assert code == 2 and "usage" in json.loads(out)["error"]


def test_logs_say_when_text_storage_is_off(tmp_path, run, monkeypatch):
    services = Services(Settings(data_dir=tmp_path / "data", ledger_store_text=False))
    monkeypatch.setattr("assistant.commands.logs._services", lambda: services)
    code, out = run("logs", "search", "fee", "--json")
    result = json.loads(out)
    assert code == 0 and result["text_stored"] is False and "text storage is off" in result["note"]
    code, out = run("logs")
    assert out.startswith("note: text storage is off")


def test_stats_votes_shows_win_rates_and_feedback(tmp_path, run, monkeypatch):
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    services = Services(Settings(data_dir=tmp_path / "data"))
    from assistant.ledger.store import AnswerRecord

    ledger, votes = services.ledger, services.votes
    for number in range(6):
        a = ledger.record(AnswerRecord(question=f"q{number}", chosen_mode="prompt"))
        b = ledger.record(AnswerRecord(question=f"q{number}", chosen_mode="adapter",
                                       adapter="law"))
        votes.battle("ann", a, b, "prompt", "adapter:law", "a" if number < 5 else "both_bad")
    votes.feedback(a, "ann", "like")
    code, out = run("stats", "--votes", "--json")
    result = json.loads(out)["votes"]
    assert code == 0 and result["battles"] == 6
    assert [r["strategy"] for r in result["win_rates"]] == ["prompt", "adapter:law"]
    assert result["win_rates"][0]["both_bad"] == 1 and result["win_rates"][0]["low"] is not None
    assert result["feedback"][0]["strategy"] == "prompt" and result["feedback"][0]["likes"] == 1
    code, out = run("stats", "--votes")
    assert "arena: 6 battles" in out and "adapter:law" in out and "1 likes" in out
