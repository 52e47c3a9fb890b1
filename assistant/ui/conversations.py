"""The conversation sidebar of the Chat tab: this visitor's saved chats, reopened,
renamed and deleted, and the saving of every question and answer as it completes.

A chat's server-side state (``gr.State``) is ``{"conversation": id or None, "answers":
{chatbot message index: ledger id}}``: the ledger ids stay on the server, so feedback
always names an answer this page was given. Conversations belong to ``Context.owner``;
an anonymous visitor's go when their page closes, like their private uploads. With the
ledger's text storage off the UI saves nothing and says so (a chat without its words
could not be reopened).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from assistant.errors import StrataError
from assistant.ui.common import Context, Refusal, chat_turns, message_text

NOT_SAVED = ("**Chats are not saved**: this server stores no conversation text. "
             "A chat lasts until you leave the page.")
ANONYMOUS = ("Your chats are kept until you close this page "
             "(log in to keep them across visits).")
LOGGED_IN = "Your saved chats, most recent first."


def fresh_state() -> dict[str, Any]:
    """The state of an empty chat: no conversation yet, no answers."""
    return {"conversation": None, "answers": {}}


class Sidebar:
    """The sidebar's components, laid out in the current Blocks context."""

    def __init__(self, ctx: Context) -> None:
        saving = ctx.services.conversations.stores_text
        with gr.Column(scale=1, min_width=220, elem_id="conversations"):
            gr.Markdown("### Conversations")
            self.note = gr.Markdown(NOT_SAVED if not saving else LOGGED_IN,
                                    elem_id="conversations-note")
            self.new = gr.Button("New chat", size="sm", elem_id="new-chat")
            self.pick = gr.Radio([], label="Your chats", elem_id="conversation-list",
                                 visible=saving)
            with gr.Group(visible=saving):
                self.title = gr.Textbox(label="Title", max_lines=1,
                                        elem_id="conversation-title")
                with gr.Row():
                    self.rename = gr.Button("Rename", size="sm", elem_id="rename-chat")
                    self.delete = gr.Button("Delete", size="sm", variant="stop",
                                            elem_id="delete-chat")


def wire(ctx: Context, bar: Sidebar, chat: list[Any], tab: gr.Tab) -> None:
    """Events of the sidebar; ``chat`` is [chatbot, state, details, status]."""
    chatbot, state, details, status = chat

    def listing(current: dict | None, request: gr.Request) -> tuple[Any, Any]:
        return conversation_list(ctx, current, request), note(ctx, request)

    def reopen(conversation: str, request: gr.Request) -> tuple[Any, ...]:
        return open_conversation(ctx, conversation, request)

    def renamed(conversation: str, title: str, state_: dict,
                request: gr.Request) -> Any:
        return rename(ctx, conversation, title, state_, request)

    def deleted(conversation: str, state_: dict, request: gr.Request) -> tuple[Any, ...]:
        return delete(ctx, conversation, state_, request)

    def shown_thumbs(history: list[dict], state_: dict, request: gr.Request) -> Any:
        return thumbs(ctx, history, state_, request)

    thumbs_kw: dict[str, Any] = {"api_visibility": "private", "queue": False}

    # on page load, whenever the chat's state changes (a new conversation, a new answer)
    gr.on(None, listing, [state], [bar.pick, bar.note], api_name="conversations")
    tab.select(listing, [state], [bar.pick, bar.note], api_visibility="private")
    bar.pick.input(reopen, [bar.pick], [chatbot, state, bar.title, details, status],
                   api_name="open_conversation"
                   ).then(shown_thumbs, [chatbot, state], chatbot, **thumbs_kw)
    bar.new.click(new_chat, None, [chatbot, state, bar.pick, bar.title, details, status],
                  api_name="new_chat", queue=False
                  ).then(shown_thumbs, [chatbot, state], chatbot, **thumbs_kw)
    bar.rename.click(renamed, [bar.pick, bar.title, state], bar.pick,
                     api_name="rename_conversation")
    bar.delete.click(deleted, [bar.pick, state],
                     [bar.pick, chatbot, state, bar.title, details, status],
                     api_name="delete_conversation"
                     ).then(shown_thumbs, [chatbot, state], chatbot, **thumbs_kw)


# --- the sidebar's handlers ------------------------------------------------------------
def note(ctx: Context, request: gr.Request | None) -> str:
    if not ctx.services.conversations.stores_text:
        return NOT_SAVED
    return LOGGED_IN if ctx.visitor(request).user else ANONYMOUS


def conversation_list(ctx: Context, state: dict | None, request: gr.Request | None
                      ) -> gr.Radio:
    """The radio of this visitor's conversations, the open one selected."""
    service = ctx.services.conversations
    if not service.stores_text:
        return gr.Radio(choices=[], value=None)
    items = service.list(ctx.owner(request))
    choices = [(f"{c.title or '(untitled)'} · {c.turns} message{'s' if c.turns != 1 else ''}",
                c.id) for c in items]
    current = (state or {}).get("conversation")
    return gr.Radio(choices=choices, value=current if current in {c.id for c in items}
                    else None)


def open_conversation(ctx: Context, conversation: str, request: gr.Request | None
                      ) -> tuple[Any, ...]:
    """Load a saved conversation into the chat: [chatbot, state, title, details, status]."""
    if not conversation:
        raise Refusal("Choose a conversation first.")
    try:
        saved = ctx.services.conversations.get(ctx.owner(request), conversation)
    except StrataError as exc:
        raise Refusal(str(exc)) from exc
    history: list[dict[str, str]] = []
    answers: dict[str, str] = {}
    for message in saved.messages:
        if not message["content"]:
            continue
        if message.get("answer_id"):
            answers[str(len(history))] = message["answer_id"]
        history.append({"role": message["role"], "content": message["content"]})
    state = {"conversation": saved.id, "answers": answers}
    return history, state, saved.title, None, ""


def thumbs(ctx: Context, history: list[dict] | None, state: dict | None,
           request: gr.Request | None) -> gr.Chatbot:
    """The chat's likes and dislikes as this visitor left them (a reopened chat shows its
    thumbs again; an emptied one shows none). Gradio's feedback_value holds one entry per
    assistant message, in order; set apart from the messages, so the API's
    /open_conversation still returns the plain history."""
    answers = (state or {}).get("answers") or {}
    given = ctx.services.votes.owner_feedback(ctx.owner(request), list(answers.values()))
    names = {"like": "Like", "dislike": "Dislike"}
    feedback = [names.get(given.get(answers.get(str(index), ""), ""))
                for index, message in enumerate(history or []) if message["role"] == "assistant"]
    return gr.Chatbot(feedback_value=feedback)


def new_chat() -> tuple[Any, ...]:
    """An empty chat; its conversation is created with its first question."""
    return [], fresh_state(), gr.Radio(value=None), "", None, ""


def rename(ctx: Context, conversation: str, title: str, state: dict,
           request: gr.Request | None) -> gr.Radio:
    if not conversation:
        raise Refusal("Choose a conversation to rename.")
    if not (title or "").strip():
        raise Refusal("Type the new title first.")
    try:
        ctx.services.conversations.rename(ctx.owner(request), conversation, title)
    except StrataError as exc:
        raise Refusal(str(exc)) from exc
    return conversation_list(ctx, {"conversation": conversation}, request)


def delete(ctx: Context, conversation: str, state: dict, request: gr.Request | None
           ) -> tuple[Any, ...]:
    """Delete the chosen conversation; the chat empties when it was the open one."""
    if not conversation:
        raise Refusal("Choose a conversation to delete.")
    try:
        ctx.services.conversations.delete(ctx.owner(request), conversation)
    except StrataError as exc:
        raise Refusal(str(exc)) from exc
    if (state or {}).get("conversation") == conversation:
        return (conversation_list(ctx, None, request), [], fresh_state(), "", None,
                "Conversation deleted.")
    return (conversation_list(ctx, state, request), gr.skip(), gr.skip(), "", gr.skip(),
            "Conversation deleted.")


def forget(ctx: Context, request: gr.Request | None) -> None:
    """An anonymous visitor's conversations go with their page (nobody could reopen them)."""
    if ctx.visitor(request).user:
        return
    service = ctx.services.conversations
    owner = ctx.owner(request)
    for item in service.list(owner):
        service.delete(owner, item.id)


# --- saving as the chat goes ---------------------------------------------------------------
def save_question(ctx: Context, request: gr.Request | None, state: dict, history: list[dict],
                  question: str) -> dict:
    """Save ``question`` (creating the conversation with the turns already on screen when
    there is none yet); returns the chat's new state."""
    service = ctx.services.conversations
    state = {**fresh_state(), **(state or {})}
    if not service.stores_text:
        return state
    owner = ctx.owner(request)
    if state["conversation"]:
        try:
            service.append(owner, state["conversation"], "user", question)
            return state
        except StrataError:  # deleted meanwhile (another tab): start a new one
            pass
    conversation = service.create(owner)
    for turn in chat_turns(history):
        service.append(owner, conversation, turn["role"], turn["content"])
    service.append(owner, conversation, "user", question)
    return {**state, "conversation": conversation}


def save_answer(ctx: Context, request: gr.Request | None, state: dict, message: dict,
                answer_id: str | None) -> None:
    """Save the answer shown in ``message`` (its text without footer), if it is one."""
    turns = chat_turns([{"role": "user", "content": "?"}, message])
    if len(turns) < 2 or not state.get("conversation"):
        return
    if not ctx.services.conversations.stores_text:
        return
    try:
        ctx.services.conversations.append(ctx.owner(request), state["conversation"],
                                          "assistant", turns[1]["content"], answer_id)
    except StrataError:  # the conversation was deleted while the answer streamed
        return


def cut(ctx: Context, request: gr.Request | None, state: dict, history: list[dict], index: int
        ) -> tuple[list[dict], dict]:
    """The chat and its state with message ``index`` and all after it removed, in the
    saved conversation too (retry, edit, undo)."""
    kept = list(history or [])[:index]
    state = {**fresh_state(), **(state or {})}
    answers = {k: v for k, v in state["answers"].items() if int(k) < index}
    state = {**state, "answers": answers}
    if state["conversation"] and ctx.services.conversations.stores_text:
        try:
            ctx.services.conversations.truncate(ctx.owner(request), state["conversation"],
                                                len(chat_turns(kept)))
        except StrataError:
            state = {**state, "conversation": None}
    return kept, state


def question_at(history: list[dict], index: int) -> str:
    """The text of the user message at ``index`` (retry asks it again)."""
    if not 0 <= index < len(history or []) or history[index].get("role") != "user":
        raise Refusal("That message is not a question of this chat.")
    return message_text(history[index]) or ""
