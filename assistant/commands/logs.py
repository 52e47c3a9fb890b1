"""`assistant logs`: recent answers and conversations, one answer or conversation, search.

In the spirit of simonw/llm's ``llm logs``: the ledger is the log. ``list`` shows the
newest answers and the conversations of one owner ("cli", the terminal's, unless
``--owner`` names another); ``show ID`` takes an answer's id (its whole ledger row) or a
conversation's (its turns, each answer with its route); ``search TEXT`` looks in the
questions, answers and follow-ups' standalone queries. With text storage off there is no
text to show or search, and the output says so.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from assistant.errors import StrataError
from assistant.settings import get_settings

if TYPE_CHECKING:
    from assistant.services import Services

ACTIONS = ("list", "show", "search")
ROUTE = ("chosen_mode", "adapter", "reason", "standalone_query", "history_turns", "total_ms",
         "prompt_tokens", "completion_tokens", "cost_usd", "grounding", "error")
TEXT_OFF = ("text storage is off (ASSISTANT_LEDGER_STORE_TEXT=false): questions and answers "
            "recorded since then have no text to show or search")
CLIP = 70  # characters of a question in a list line


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "logs", help="recent answers and conversations; show one; search the text",
        description="assistant logs [list | show ID | search TEXT]: ID is an answer's or a "
        "conversation's id (from the list).")
    p.add_argument("action", nargs="?", choices=ACTIONS, default="list")
    p.add_argument("target", nargs="*", help="show: the id; search: the text")
    p.add_argument("-n", type=int, default=10, metavar="N", help="how many of each (10)")
    p.add_argument("--owner", default="cli", help="whose conversations (cli: the terminal's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def _services() -> Services:
    from assistant.services import Services

    return Services(get_settings())


def run(args: argparse.Namespace) -> int:
    from assistant.cli import emit

    target = " ".join(args.target).strip()
    if (args.action == "list") == bool(target):
        raise StrataError("usage: assistant logs [list | show ID | search TEXT]")
    if args.n < 1:
        raise StrataError("-n must be at least 1")
    services = _services()
    if args.action == "show":
        result = show(services, target, args.owner)
    elif args.action == "search":
        result = search(services, target, args.n)
    else:
        result = listing(services, args.owner, args.n)
    emit(result, args.json, render)
    return 0


def _text_note(services: Services) -> dict[str, Any]:
    stored = services.ledger.store_text
    return {"text_stored": stored, **({} if stored else {"note": TEXT_OFF})}


def listing(services: Services, owner: str, n: int) -> dict[str, Any]:
    conversations = services.conversations.list(owner)[:n]
    return {"kind": "list", "answers": services.ledger.recent(n), "owner": owner,
            "conversations": [asdict(c) for c in conversations], **_text_note(services)}


def show(services: Services, item_id: str, owner: str) -> dict[str, Any]:
    """An answer's ledger row, else a conversation with each answer's route."""
    row = services.ledger.answer(item_id)
    if row is not None:
        return {"kind": "answer", "answer": row, **_text_note(services)}
    try:
        conversation = services.conversations.get(owner, item_id)
    except StrataError:
        raise StrataError(f"no answer or conversation {item_id!r} (of owner {owner!r})") from None
    messages = []
    for message in conversation.messages:
        answer = services.ledger.answer(message["answer_id"]) if message["answer_id"] else None
        route = {k: answer[k] for k in ROUTE} if answer else None
        messages.append({**message, "route": route})
    return {"kind": "conversation", "id": conversation.id, "title": conversation.title,
            "created": conversation.created, "updated": conversation.updated,
            "messages": messages, **_text_note(services)}


def search(services: Services, text: str, n: int) -> dict[str, Any]:
    return {"kind": "search", "query": text, "answers": services.ledger.search(text, n),
            **_text_note(services)}


# --- the human rendering ---------------------------------------------------------------
def _clip(text: str | None) -> str:
    text = " ".join((text or "").split()) or "(no text)"
    return text if len(text) <= CLIP else text[:CLIP - 3] + "..."


def _route(row: dict[str, Any]) -> str:
    mode = (row.get("chosen_mode") or "?") + (f" ({row['adapter']})" if row.get("adapter") else "")
    total = f"{row['total_ms']:.0f} ms" if row.get("total_ms") is not None else "-"
    return f"{mode} | {total}" + (f" | error {row['error']}" if row.get("error") else "")


def _answer_lines(rows: list[dict[str, Any]]) -> list[str]:
    return [f"  {r['id']}  {r['created_at'][:19]}  {_route(r)}  {_clip(r['question'])}"
            for r in rows] or ["  (none)"]


def render(result: dict[str, Any]) -> str:
    lines = [f"note: {result['note']}"] if "note" in result else []
    kind = result["kind"]
    if kind == "list":
        lines += ["answers, newest first:", *_answer_lines(result["answers"]),
                  f"conversations of {result['owner']}, latest first:"]
        lines += [f"  {c['id']}  {c['updated'][:19]}  {c['turns']:>3} messages  "
                  f"{_clip(c['title'])}" for c in result["conversations"]] or ["  (none)"]
    elif kind == "search":
        lines += [f"answers matching {result['query']!r}:", *_answer_lines(result["answers"])]
    elif kind == "answer":
        lines += [f"{k}: {v}" for k, v in result["answer"].items() if v not in (None, "", [], {})]
    else:
        lines.append(f"conversation {result['id']}: {result['title'] or '(untitled)'}")
        for message in result["messages"]:
            lines.append(f"{message['role']}: {message['content'] or '(no text)'}")
            if message["route"]:
                lines.append(f"  route: {_route(message['route'])} | {message['route']['reason']}"
                             f" | answer {message['answer_id']}")
    return "\n".join(lines)
