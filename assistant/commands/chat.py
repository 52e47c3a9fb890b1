"""`assistant chat`: an interactive conversation in the terminal, saved as it goes.

Like simonw/llm's ``llm chat``: one line is one message; the answer streams, then the
route line of `assistant ask`. Every turn is saved to a conversation owned by "cli"
(`assistant logs` shows them; ``--continue`` or ``--conversation ID`` picks one up). Ctrl+C
during an answer stops it (the pipeline records it as cancelled) and the chat goes on; a
second Ctrl+C while it winds down interrupts outright.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from assistant.answering.modes import ALL as MODES
from assistant.errors import StrataError
from assistant.settings import get_settings

if TYPE_CHECKING:
    from assistant.models.generation import SamplingParams
    from assistant.services import Services

OWNER = "cli"  # the owner of conversations made in the terminal
EXITS = ("exit", "quit")
HELP = ("exit, quit or Ctrl+D ends; !retry asks the last question again; !edit TEXT asks TEXT "
        "instead of it; !mode M switches the mode; Ctrl+C stops an answer")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "chat", help="an interactive conversation with history, saved as it goes",
        description="Reads one message per line from standard input. " + HELP + ".")
    p.add_argument("--mode", choices=MODES, default="auto", help="default: auto (the router)")
    p.add_argument("--adapter", help="adapter for adapter/layered mode (default: best match)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--continue", dest="resume_latest", action="store_true",
                       help="continue the latest conversation made here")
    which.add_argument("--conversation", metavar="ID", help="continue this conversation")
    p.add_argument("--max-new-tokens", type=int, help="answer length cap")
    p.add_argument("--json", action="store_true",
                   help="print no text as it comes; at the end one JSON object of the answers")
    p.set_defaults(handler=run)


def _services() -> Services:
    """The app's services with the demo knowledge in place (tests hand in their own)."""
    from assistant.retrieval.ingest import ensure_demo_knowledge
    from assistant.services import Services

    services = Services(get_settings())
    ensure_demo_knowledge(services.settings, services.store)
    return services


def run(args: argparse.Namespace) -> int:
    from assistant.cli import emit
    from assistant.models.generation import SamplingParams

    services = _services()  # the settings' defaults: no local model for a remote backend
    params = SamplingParams.from_settings(services.settings).with_(
        max_new_tokens=args.max_new_tokens)
    chat = Chat(services, args.mode, args.adapter, params, quiet=args.json)
    if args.resume_latest or args.conversation:
        chat.resume(args.conversation or services.conversations.latest(OWNER))
    chat.say(chat.greeting())
    for line in _lines(prompt="> " if sys.stdin.isatty() and not args.json else ""):
        text = line.strip()
        if text.lower() in EXITS:
            break
        if text:
            chat.handle(text)
    if args.json:
        emit({"conversation_id": chat.conversation_id, "mode": chat.mode,
              "answers": chat.results}, True)
    return 0


def _lines(prompt: str) -> Iterator[str]:
    """Lines of standard input until end of file (or Ctrl+C at the prompt)."""
    while True:
        try:
            yield input(prompt)
        except (EOFError, KeyboardInterrupt):
            if prompt:
                print()
            return


class Chat:
    """One terminal conversation: the history the pipeline reads, and the saved copy."""

    def __init__(self, services: Services, mode: str, adapter: str | None,
                 params: SamplingParams, quiet: bool = False) -> None:
        self.services, self.mode, self.adapter, self.params = services, mode, adapter, params
        self.quiet = quiet  # --json: nothing but the final object on standard output
        self.conversation_id: str | None = None
        self.history: list[dict[str, str]] = []
        self.saved = 0  # messages in the saved conversation
        self.last: tuple[str, int, int] | None = None  # question, len(history), saved before
        self.results: list[dict[str, Any]] = []

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def greeting(self) -> str:
        where = (f"conversation {self.conversation_id} ({self.saved} messages)"
                 if self.conversation_id else "a new conversation")
        note = ("" if self.services.conversations.stores_text else
                "\ntext storage is off (ASSISTANT_LEDGER_STORE_TEXT=false): turns are saved "
                "without their text")
        return f"chatting in {self.mode} mode, {where}; {HELP}{note}"

    def resume(self, conversation_id: str | None) -> None:
        """Continue a saved conversation: its messages become the history."""
        if conversation_id is None:
            raise StrataError("no conversation to continue: start one with `assistant chat`")
        saved = self.services.conversations.get(OWNER, conversation_id)
        self.conversation_id, self.saved = saved.id, len(saved.messages)
        self.history = saved.history()
        users = [i for i, m in enumerate(saved.messages) if m["role"] == "user"]
        if users and saved.messages[users[-1]]["content"]:
            before = saved.messages[:users[-1]]
            self.last = (saved.messages[users[-1]]["content"],
                         len([m for m in before if m["content"]]), users[-1])

    def handle(self, text: str) -> None:
        """A message, or one of the ``!`` commands."""
        command, _, rest = text.partition(" ")
        if command == "!mode":
            if rest.strip() not in MODES:
                self.say(f"modes: {', '.join(MODES)}")
                return
            self.mode = rest.strip()
            self.say(f"mode: {self.mode}")
        elif command in ("!retry", "!edit"):
            if self.last is None:
                self.say("no earlier question in this conversation")
            elif command == "!edit" and not rest.strip():
                self.say("!edit TEXT: the new question")
            else:
                question, kept, saved = self.last
                self.history = self.history[:kept]
                if self.conversation_id:
                    self.services.conversations.truncate(OWNER, self.conversation_id, saved)
                self.saved = saved
                self.ask(rest.strip() if command == "!edit" else question)
        elif command.startswith("!"):
            self.say(HELP)
        else:
            self.ask(text)

    def ask(self, question: str) -> None:
        """Answer ``question`` with the history, show it, and save both turns."""
        stream = self.services.pipeline.stream(question, self.mode, self.adapter, None,
                                               self.params, history=self.history)
        self.last = (question, len(self.history), self.saved)
        try:
            text, stopped = self._stream(stream)
        except StrataError as exc:
            print(f"error: {exc}", file=sys.stderr)
            self.results.append({"question": question, "error": str(exc)})
            return
        answer = stream.answer
        if stopped or answer is None:
            self.say("\n[stopped]")
            self.results.append({"question": question, "text": text, "cancelled": True})
            self._save(question, text, None)
            return
        from assistant.commands.ask import _render  # `assistant ask`'s route line

        self.say("\n\n" + _render(answer.to_dict()) + "\n")
        self.results.append(answer.to_dict())
        self._save(question, answer.text, answer.ledger_id)

    def _stream(self, stream: Any) -> tuple[str, bool]:
        """Show the pieces as they come; returns the text and whether Ctrl+C stopped it."""
        pieces, shown, stop = iter(stream), [], threading.Event()
        with _stop_on_interrupt(stop):
            try:
                for piece in pieces:
                    shown.append(piece)
                    _write_piece(piece, self.quiet)
                    if stop.is_set():
                        break
            except KeyboardInterrupt:  # no handler here (not the main thread)
                stop.set()
        if stop.is_set():
            pieces.close()  # the pipeline records the answer as cancelled
        return "".join(shown).strip(), stop.is_set()

    def _save(self, question: str, text: str, answer_id: str | None) -> None:
        conversations = self.services.conversations
        if self.conversation_id is None:
            self.conversation_id = conversations.create(OWNER)
        conversations.append(OWNER, self.conversation_id, "user", question)
        conversations.append(OWNER, self.conversation_id, "assistant", text, answer_id)
        self.saved += 2
        self.history += [{"role": "user", "content": question}]
        if text:
            self.history.append({"role": "assistant", "content": text})


def _write_piece(piece: str, quiet: bool) -> None:
    if not quiet:
        sys.stdout.write(piece)
        sys.stdout.flush()


@contextmanager
def _stop_on_interrupt(stop: threading.Event) -> Iterator[None]:
    """While an answer streams, the first Ctrl+C sets ``stop`` (the answer ends at its next
    piece, recorded as cancelled); a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
