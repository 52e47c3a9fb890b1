"""Issue 28's privacy and hardening round, below the served app: votes only on one's own
answers, odd and oversized text refused without a 500 or a 10 MB row, no text in the log
when text is not kept, refusals without tracebacks, whole paths hidden, an empty synth
domain, stale uploads swept. (The two-user checks: tests/e2e/test_ledger_privacy.py.)"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from assistant.errors import StrataError
from assistant.ledger.store import AnswerRecord, Ledger
from assistant.ledger.votes import Votes
from assistant.models.generation import Generation, SamplingParams, Timings, Usage
from tests.tiny_models import tiny_services
from tests.unit.test_api import assert_error, client_for

FEES = ("# Fees\n\n## Connection\n\nThe new connection fee is 148.50 pounds. Applications "
        "take 17 working days.\n\n## Meters\n\nMeters are read every quarter.\n")
PARAMS = SamplingParams(max_new_tokens=12, repetition_penalty=1.0)
SURROGATE = "hi \ud800 there"


# --- item 2: feedback on one's own answers -----------------------------------------------
def test_votes_take_only_answers_of_the_voters_sessions(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    alice = ledger.record(AnswerRecord(question="q", session_id="alice"))
    bob = ledger.record(AnswerRecord(question="q", session_id="bob"))
    bob_api = ledger.record(AnswerRecord(question="q", session_id="api:user:bob"))
    votes = Votes(ledger)
    mine = ("bob", "api:user:bob")
    with pytest.raises(StrataError, match="no such answer among yours"):
        votes.feedback(alice, "bob", "dislike", sessions=mine)
    with pytest.raises(StrataError, match="no such answer among yours"):
        votes.battle("bob", alice, bob, "prompt", "base", "a", sessions=mine)
    assert votes.feedback_for(alice) == [] and votes.battles() == []
    votes.feedback(bob_api, "bob", "like", sessions=mine)
    votes.battle("bob", bob, bob_api, "prompt", "base", "tie", sessions=mine)
    assert len(votes.battles()) == 1


# --- items 3 and 4: a lone surrogate, a 10 MB question ---------------------------------------
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("where", ["question", "history", "part"])
def test_a_lone_surrogate_is_a_400_before_the_model(tmp_path, stream, where):
    client, pipeline, _ = client_for(tmp_path)
    messages = {"question": [{"role": "user", "content": SURROGATE}],
                "history": [{"role": "user", "content": SURROGATE},
                            {"role": "assistant", "content": "hello"},
                            {"role": "user", "content": "and the fee?"}],
                "part": [{"role": "user", "content": [{"type": "text", "text": SURROGATE}]}]}
    body = {"model": "strata-base", "messages": messages[where], "stream": stream}
    response = client.post("/v1/chat/completions", content=json.dumps(body),  # "\\ud800"
                           headers={"Content-Type": "application/json"})
    error = assert_error(response, 400, param=response.json()["error"]["param"])
    assert error["type"] == "invalid_request_error" and "surrogate" in error["message"]
    assert error["param"].startswith("messages[") and pipeline.calls == []


@pytest.fixture
def services(tmp_path, tiny_base, adapters_dir):
    return tiny_services(tmp_path, tiny_base, adapters_dir, FEES, ledger_store_text=False)


def test_refused_questions_leave_one_row_of_at_most_the_limit(tmp_path, tiny_base, adapters_dir):
    from assistant.answering.answer import MAX_QUESTION_CHARS

    services = tiny_services(tmp_path, tiny_base, adapters_dir, FEES)
    for question, why in (("x" * 10_000_000, "too long"), (SURROGATE, "surrogate")):
        with pytest.raises(StrataError, match=why):
            services.pipeline.ask(question, mode="base", params=PARAMS)
    with pytest.raises(StrataError, match="history message 1"):
        services.pipeline.ask("and?", mode="base", params=PARAMS,
                              history=[{"role": "user", "content": SURROGATE}])
    rows = services.ledger.rows()
    assert len(rows) == 2 and all(r["error"] for r in rows)  # the history is checked first
    assert [len(r["question"]) for r in rows] == [MAX_QUESTION_CHARS, len(SURROGATE)]
    assert rows[1]["question"] == "hi ? there"
    db = Path(services.settings.data_dir) / "ledger.db"
    assert db.stat().st_size + Path(f"{db}-wal").stat().st_size < 2 * 1024 * 1024


# --- item 5: no text in the log when text is not kept ---------------------------------------
class Said:
    """A generator's token stream that says ``text``: an answer the check replaces."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __iter__(self):
        yield self.text

    def wait(self) -> Generation:
        return Generation(self.text, Usage(prompt_tokens=5, completion_tokens=9), Timings(), "stop")

    def close(self) -> None:
        pass


def test_store_text_off_keeps_answer_text_out_of_the_log(services, caplog, monkeypatch):
    said = "Zelwick charges 9.99 pounds under the Tarquin scheme."
    monkeypatch.setattr(services.pipeline.backend, "stream", lambda *a, **k: Said(said))
    caplog.set_level(logging.INFO)
    answer = services.pipeline.ask("What is the new connection fee?", mode="prompt",
                                   params=PARAMS)
    assert answer.generated == said and "replaced by quotes" in caplog.text
    for word in ("Zelwick", "9.99", "Tarquin", "connection fee?"):
        assert word not in caplog.text


def test_a_web_refusal_logs_no_traceback():
    from assistant.ui.common import Refusal

    refusal = Refusal("only admins may upload documents")
    assert refusal.print_exception is False and str(refusal.message).startswith("only admins")


# --- item 8: whole paths, an empty domain, stale uploads ------------------------------------
def test_hiding_a_folder_replaces_whole_paths_only(tmp_path, monkeypatch):
    from assistant.retrieval.ingest import hide_paths

    monkeypatch.chdir(tmp_path)
    path = Path("ing") / "notes.docx"
    text = (f"the folder being ingested: {tmp_path}/ing/notes.docx (in {tmp_path}/ing); "
            "ing/notes.docx")
    assert hide_paths(text, path, "notes.docx") == (
        "the folder being ingested: notes.docx (in (folder)); notes.docx")


def test_an_empty_synth_domain_reads_no_chunks():
    from assistant.training.from_domain import domain_passages

    def chunks(domain=None):
        raise AssertionError("an empty domain read the store")

    for blank in ("", "  "):
        assert domain_passages(SimpleNamespace(store=SimpleNamespace(chunks=chunks)),
                               blank) == []


def test_stale_uploads_are_swept_and_fresh_ones_kept(tmp_path):
    from assistant.ui.files import sweep_uploads

    stale = tmp_path / "0257d5" / "killed.docx"
    stale.parent.mkdir()
    stale.write_bytes(b"cut off by kill -9")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = tmp_path / "a1b2c3" / "pending.md"
    fresh.parent.mkdir()
    fresh.write_text("another app's upload, waiting for its handler")
    assert sweep_uploads(3600, root=tmp_path) == 1
    assert not stale.parent.exists() and fresh.is_file()
