"""The chat's handlers over a real ledger and a fake pipeline: saving as the chat goes,
stop, retry/edit, reopening, the sidebar, feedback, and text storage turned off."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from assistant.ui import conversations
from assistant.ui.chat import converse, on_like, send_feedback
from assistant.ui.common import FOOTER_START
from tests.unit.ui_fakes import context, request

PAGE = request("page-1")
OWNER = "session:page-1"


def ask(ctx, question, history=(), state=None, req=PAGE):
    *_, last = converse(ctx, question, list(history), state, "prompt", "", req)
    return last  # (history, "", details, state)


def test_every_question_and_answer_is_saved_with_the_answers_ledger_id(tmp_path):
    ctx = context(tmp_path)
    history, cleared, first, state = ask(ctx, "When does the car park open?")
    assert cleared == "" and state["answers"] == {"1": first["ledger_id"]}
    history, _, second, state = ask(ctx, "And close?", history, state)
    calls = ctx.services.pipeline.calls
    assert calls[1]["history"] == [
        {"role": "user", "content": "When does the car park open?"},
        {"role": "assistant", "content": "It opens at 07:30."}]
    saved = ctx.services.conversations.get(OWNER, state["conversation"])
    assert [(m["role"], m["answer_id"]) for m in saved.messages] == [
        ("user", None), ("assistant", first["ledger_id"]),
        ("user", None), ("assistant", second["ledger_id"])]
    assert FOOTER_START not in saved.messages[1]["content"]
    assert saved.title == "When does the car park open?"


def test_an_empty_chat_starts_a_new_conversation(tmp_path):
    ctx = context(tmp_path)
    _, _, _, state = ask(ctx, "First?")
    _, _, _, other = ask(ctx, "Second?", [], state)
    assert other["conversation"] != state["conversation"]
    assert len(ctx.services.conversations.list(OWNER)) == 2


def test_stopping_keeps_the_partial_answer_and_the_ledger_says_cancelled(tmp_path):
    ctx = context(tmp_path)
    stream = converse(ctx, "When does it open?", [], None, "prompt", "", PAGE)
    for _ in range(3):  # the question, then two words
        shown, _, _, state = next(stream)
    stream.close()  # what Gradio does when Stop cancels the event
    rows = ctx.services.ledger.rows()
    assert [r["error"] for r in rows] == ["cancelled by the reader"]
    saved = ctx.services.conversations.get(OWNER, state["conversation"]).messages
    assert [(m["role"], m["content"].strip(), m["answer_id"]) for m in saved] == [
        ("user", "When does it open?", None), ("assistant", "It opens", None)]


def test_retry_and_edit_cut_the_chat_and_its_saved_copy(tmp_path):
    ctx = context(tmp_path)
    history, _, _, state = ask(ctx, "One?")
    history, _, _, state = ask(ctx, "Two?", history, state)
    kept, cut_state = conversations.cut(ctx, PAGE, state, history, 2)
    assert len(kept) == 2 and cut_state["answers"] == {"1": state["answers"]["1"]}
    saved = ctx.services.conversations.get(OWNER, state["conversation"]).messages
    assert [m["content"] for m in saved] == ["One?", "It opens at 07:30."]
    assert conversations.question_at(history, 2) == "Two?"
    with pytest.raises(gr.Error):
        conversations.question_at(history, 1)  # an answer, not a question


def test_a_reopened_conversation_maps_its_answers_for_feedback(tmp_path):
    ctx = context(tmp_path)
    history, _, details, state = ask(ctx, "One?")
    reopened, new_state, title, _, _ = conversations.open_conversation(
        ctx, state["conversation"], PAGE)
    assert [m["content"] for m in reopened] == ["One?", "It opens at 07:30."]
    assert new_state == {"conversation": state["conversation"],
                         "answers": {"1": details["ledger_id"]}}
    assert title == "One?"
    with pytest.raises(gr.Error, match="no such conversation"):  # another visitor's
        conversations.open_conversation(ctx, state["conversation"], request("page-2"))


def test_the_sidebar_lists_renames_and_deletes_only_this_visitors_chats(tmp_path):
    ctx = context(tmp_path)
    _, _, _, mine = ask(ctx, "Mine?")
    _, _, _, theirs = ask(ctx, "Theirs?", req=request("page-2"))
    listed = conversations.conversation_list(ctx, mine, PAGE)
    assert [value for _, value in listed.choices] == [mine["conversation"]]
    assert listed.value == mine["conversation"]
    renamed = conversations.rename(ctx, mine["conversation"], "Car park", mine, PAGE)
    assert renamed.choices[0][0].startswith("Car park")
    with pytest.raises(gr.Error, match="no such conversation"):
        conversations.delete(ctx, theirs["conversation"], mine, PAGE)
    after, chat, state, *_ = conversations.delete(ctx, mine["conversation"], mine, PAGE)
    assert after.choices == [] and chat == [] and state["conversation"] is None
    assert conversations.note(ctx, PAGE) == conversations.ANONYMOUS
    assert conversations.note(ctx, request(user="alice")) == conversations.LOGGED_IN


def test_an_anonymous_visitors_chats_go_with_their_page(tmp_path):
    ctx = context(tmp_path)
    ask(ctx, "Anonymous?")
    ask(ctx, "Alice's?", req=request("page-2", user="alice"))
    conversations.forget(ctx, PAGE)
    conversations.forget(ctx, request("page-2", user="alice"))
    assert ctx.services.conversations.list(OWNER) == []
    assert len(ctx.services.conversations.list("alice")) == 1


def test_with_text_storage_off_nothing_is_saved_and_the_sidebar_says_so(tmp_path):
    ctx = context(tmp_path, store_text=False)
    _, _, details, state = ask(ctx, "Secret?")
    assert state["conversation"] is None and details["ledger_id"]
    assert ctx.services.conversations.list(OWNER) == []
    assert conversations.note(ctx, PAGE) == conversations.NOT_SAVED
    assert "not saved" in conversations.NOT_SAVED


def test_a_thumb_is_recorded_against_the_answer_and_a_comment_replaces_it(tmp_path):
    ctx = context(tmp_path)
    _, _, details, state = ask(ctx, "One?")
    answer = details["ledger_id"]
    box, answer_id, verdict, _, note = on_like(ctx, state, SimpleNamespace(index=1, liked=True),
                                               PAGE)
    assert (answer_id, verdict) == (answer, "like") and "like" in note
    send_feedback(ctx, answer, "dislike", "Wrong hours.", PAGE)
    votes = ctx.services.votes.feedback_for(answer)
    assert [(v["owner"], v["value"], v["comment"]) for v in votes] == [
        (OWNER, "dislike", "Wrong hours.")]
    with pytest.raises(gr.Error, match="no ledger record"):
        on_like(ctx, state, SimpleNamespace(index=0, liked=False), PAGE)


def test_a_reopened_chat_shows_this_visitors_own_thumbs_again(tmp_path):
    ctx = context(tmp_path)
    history, _, first, state = ask(ctx, "One?")
    history, _, second, state = ask(ctx, "Two?", history, state)
    ctx.services.votes.feedback(first["ledger_id"], OWNER, "dislike")
    ctx.services.votes.feedback(second["ledger_id"], "someone-else", "like")  # not theirs
    reopened, reopened_state, *_ = conversations.open_conversation(
        ctx, state["conversation"], PAGE)
    shown = conversations.thumbs(ctx, reopened, reopened_state, PAGE)
    assert shown.feedback_value == ["Dislike", None]
    assert conversations.thumbs(ctx, [], conversations.fresh_state(), PAGE).feedback_value == []
