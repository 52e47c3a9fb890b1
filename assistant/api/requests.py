"""A chat completion request, checked field by field into what the Pipeline takes.

Checked by hand rather than by a pydantic model so that every refusal is a 400 in
OpenAI's shape naming the parameter at fault (FastAPI's own validation answers 422 in
its own shape, which OpenAI clients do not understand), and so that the many optional
fields OpenAI clients send and Strata has no use for are ignored rather than refused.

The conversation: the last message is the question and must come from the user; the
user and assistant messages before it are the history the Pipeline reads. System (and
"developer") messages are not passed on: each of Strata's modes has its own system
prompt, the one its answers were measured with (and an adapter's is the one it was
trained with), so a client's instructions would change what the ledger compares. The
response's ``strata.notes`` says when one was left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from assistant.api.errors import bad_request
from assistant.models.generation import SamplingParams
from assistant.text import has_surrogates

SYSTEM_ROLES = ("system", "developer")
MAX_TOKENS = 4096  # the same cap as the max_new_tokens setting
MAX_STOPS = 4  # as OpenAI
MAX_SEED = 2**63 - 1  # torch's generator takes a 64-bit seed
SYSTEM_NOTE = "the client's system message was not used: each Strata mode has its own prompt"


@dataclass
class ChatRequest:
    """What one chat completion asks for, in Strata's terms."""

    model: str
    question: str
    history: list[dict[str, str]]
    stream: bool = False
    include_usage: bool = False
    stop: list[str] = field(default_factory=list)
    sampling: dict[str, Any] = field(default_factory=dict)  # SamplingParams field -> value
    notes: list[str] = field(default_factory=list)

    def params(self, defaults: SamplingParams) -> SamplingParams | None:
        """The sampling parameters, or None when the request sets none (the defaults)."""
        return defaults.with_(**self.sampling) if self.sampling else None


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body, or a 400 saying why not."""
    try:
        body = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError):
        raise bad_request("We could not parse the JSON body of your request: send a JSON "
                          "object with 'model' and 'messages'.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    return body


def parse_chat(body: dict[str, Any]) -> ChatRequest:
    """``body`` as a ChatRequest, or a 400 naming the first parameter at fault."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("'model' is required: one of the ids GET /v1/models lists.", "model")
    question, history, notes = _conversation(body.get("messages"))
    if body.get("n") not in (None, 1):
        raise bad_request("Only n=1 is supported: Strata gives one answer per request.", "n")
    stream = _flag(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object.", "stream_options")
    include_usage = bool(stream and options and _flag(options, "include_usage"))
    return ChatRequest(model=model.strip(), question=question, history=history,
                       stream=stream, include_usage=include_usage, stop=_stops(body.get("stop")),
                       sampling=_sampling(body), notes=notes)


def _conversation(messages: Any) -> tuple[str, list[dict[str, str]], list[str]]:
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list of {role, content}.", "messages")
    turns, notes = [], []
    for number, message in enumerate(messages):
        param = f"messages[{number}]"
        if not isinstance(message, dict):
            raise bad_request("Each message must be an object with 'role' and 'content'.", param)
        role = message.get("role")
        if role in SYSTEM_ROLES:
            notes = [SYSTEM_NOTE]
            continue
        if role not in ("user", "assistant"):
            raise bad_request(f"Unsupported role {role!r}: Strata reads user and assistant "
                              "messages (system messages are ignored; tools are not supported).",
                              f"{param}.role")
        turns.append({"role": role, "content": _text(message.get("content"), param)})
    if not turns or turns[-1]["role"] != "user":
        raise bad_request("The last message must come from the user: it is the question.",
                          "messages")
    question = turns[-1]["content"]
    if not question.strip():
        raise bad_request("The last user message is empty.", f"messages[{len(messages) - 1}]")
    return question, turns[:-1], notes


def _text(content: Any, param: str) -> str:
    """A message's text: a string, or OpenAI's list of content parts (text parts only)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return _valid(content, param)
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(
                    part.get("text"), str):
                raise bad_request("Only text content parts are supported.", f"{param}.content")
            texts.append(_valid(part["text"], param))
        return "\n".join(texts)
    raise bad_request("A message's content must be text.", f"{param}.content")


def _valid(text: str, param: str) -> str:
    """``text`` unless it holds a lone UTF-16 surrogate ("\\ud800"), which no tokenizer
    encodes: refused here rather than failing as a 500 inside the model."""
    if has_surrogates(text):
        raise bad_request("A message's content holds a lone UTF-16 surrogate (such as "
                          "\\ud800), which is not text: send valid Unicode.",
                          f"{param}.content")
    return text


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(f"'{name}' must be true or false.", name)
    return value


def _number(body: dict[str, Any], name: str, low: float, high: float,
            integer: bool = False) -> Any:
    """body[name] if it is a number in [low, high] (None when absent), else a 400."""
    value = body.get(name)
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise bad_request(f"'{name}' must be {'an integer' if integer else 'a number'}.", name)
    if not low <= value <= high:
        raise bad_request(f"'{name}' must be between {low:g} and {high:g}; got {value}.", name)
    return value


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    """The SamplingParams fields the request sets (max_completion_tokens wins over the
    older max_tokens; top_p 0 means the single most likely token: greedy)."""
    most = _number(body, "max_completion_tokens", 1, MAX_TOKENS, integer=True)
    older = _number(body, "max_tokens", 1, MAX_TOKENS, integer=True)
    chosen = {
        "max_new_tokens": most if most is not None else older,
        "temperature": _number(body, "temperature", 0.0, 2.0),
        "top_p": _number(body, "top_p", 0.0, 1.0),
        "seed": _number(body, "seed", 0, MAX_SEED, integer=True),
    }
    if chosen["top_p"] == 0:
        chosen["top_p"], chosen["temperature"] = None, 0.0
    return {name: value for name, value in chosen.items() if value is not None}


def _stops(stop: Any) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if (not isinstance(stops, list) or len(stops) > MAX_STOPS
            or not all(isinstance(s, str) and s for s in stops)):
        raise bad_request(f"'stop' must be a non-empty string or a list of up to {MAX_STOPS} "
                          "of them.", "stop")
    return list(stops)
