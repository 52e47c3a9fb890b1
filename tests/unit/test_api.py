"""The /v1 API over a fake pipeline: request checks, OpenAI's shapes, keys, the queue.

The fake keeps the Pipeline's contract that the API relies on: ``stream(...)`` returns an
iterable of text pieces whose ``decision`` is set before the first piece and whose
``answer`` is set after the last; errors are raised from the iteration.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from assistant.answering.answer import Answer, Source
from assistant.api.app import create_api
from assistant.errors import AdapterError, QueueFull, StrataError
from assistant.server import combine
from assistant.settings import Settings

QUESTION = [{"role": "user", "content": "What is the connection fee?"}]


def make_answer(text, mode, adapter=None, generated=None, finish="stop"):
    sources = [Source(1, "fees.md", "Fees", None, 0.8, "The fee is 148.50.", "c1")] if (
        mode in ("prompt", "layered")) else []
    return Answer(question="q", text=text, requested_mode=mode, mode=mode, adapter=adapter,
                  reason=f"{mode}: requested", scores={}, sources=sources, prompt_tokens=50,
                  completion_tokens=9, router_ms=1.0, retrieval_ms=2.0, ttft_ms=3.0,
                  total_ms=40.0, tokens_per_s=20.0, cost_usd=0.0001, finish_reason=finish,
                  ledger_id="row-1", grounding="quoted: x" if generated else None,
                  generated=generated)


class FakeStream:
    def __init__(self, pipeline, mode, adapter):
        self.pipeline, self.mode, self.adapter = pipeline, mode, adapter
        self.decision = self.answer = None

    @property
    def replaceable(self):  # as the Pipeline's AnswerStream: prompt/layered, check on
        return bool(self.decision and self.decision.mode in ("prompt", "layered")
                    and self.pipeline.profile.quote_sentences > 0)

    def result(self):
        return self.answer

    def cancel(self, reason):  # as the Pipeline's AnswerStream: end at the next token
        self.cancel_reason = reason

    def __iter__(self):
        script = self.pipeline.script
        if script.get("error"):
            raise script["error"]
        mode = "prompt" if self.mode == "auto" else self.mode
        self.decision = SimpleNamespace(mode=mode)
        try:
            for piece in script.get("pieces", ["The fee ", "is 148.50."]):
                if piece is None:
                    raise RuntimeError("the model fell over")
                yield piece
        except GeneratorExit:  # the Pipeline records such an answer as cancelled
            self.pipeline.cancelled += 1
            raise
        text = script.get("text", "The fee is 148.50.")
        self.answer = make_answer(script.get("final", text), mode, self.adapter,
                                  generated=text if "final" in script else None)


class FakePipeline:
    def __init__(self):
        self.calls, self.script, self.cancelled = [], {}, 0
        good = SimpleNamespace(name="alpha", ok=True, path="/nowhere/alpha", problem="")
        broken = SimpleNamespace(name="broken", ok=False, path="/nowhere/broken",
                                 problem="adapter 'broken' has no weights")
        self.adapters = SimpleNamespace(list=lambda: [good, broken])
        self.profile = SimpleNamespace(quote_sentences=2)  # the answer check is on

    def stream(self, question, mode, adapter, session_id=None, params=None, domains=None,
               history=None):
        self.calls.append({"question": question, "mode": mode, "adapter": adapter,
                           "session_id": session_id, "params": params, "domains": domains,
                           "history": history})
        return FakeStream(self, mode, adapter)


def client_for(tmp_path, gradio=False, **settings):
    pipeline = FakePipeline()
    services = SimpleNamespace(settings=Settings(data_dir=tmp_path, **settings),
                               pipeline=pipeline, store=SimpleNamespace(domains=lambda: ["water"]))
    api = create_api(services)
    client = TestClient(combine(api, _blank_gradio()) if gradio else _parent(api))
    return client, pipeline, api


def _parent(api):
    from fastapi import FastAPI

    parent = FastAPI()
    parent.mount("/v1", api)
    return parent


def _blank_gradio():
    import gradio as gr

    with gr.Blocks() as demo:
        gr.Markdown("hello")
    return demo


@pytest.fixture
def api(tmp_path):
    return client_for(tmp_path)


def chat(client, headers=None, **body):
    body.setdefault("model", "strata")
    body.setdefault("messages", QUESTION)
    return client.post("/v1/chat/completions", json=body, headers=headers or {})


def events(response):
    lines = [line for line in response.text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


def assert_error(response, status, param=None, code=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param
    if code:
        assert error["code"] == code
    return error


# --- models -----------------------------------------------------------------------------
def test_models_lists_one_per_mode_and_each_usable_adapter(api):
    client, _, _ = api
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [
        "strata", "strata-prompt", "strata-layered", "strata-base", "alpha"]
    assert all(m["object"] == "model" and m["owned_by"] == "strata" for m in body["data"])
    assert body["data"][-1]["strata"] == {"mode": "adapter", "adapter": "alpha"}
    assert client.get("/v1/models/strata-base").json()["strata"]["mode"] == "base"
    assert_error(client.get("/v1/models/broken"), 404, "model", "model_not_found")


# --- answers ------------------------------------------------------------------------------
def test_a_whole_conversation_becomes_question_history_and_mode(api):
    client, pipeline, _ = api
    messages = [{"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": [{"type": "text", "text": "And the fee?"}]}]
    response = chat(client, model="alpha", messages=messages, max_tokens=7, seed=3)
    assert response.status_code == 200, response.text
    [call] = pipeline.calls
    assert call["question"] == "And the fee?" and (call["mode"], call["adapter"]) == (
        "adapter", "alpha")
    assert call["history"] == [{"role": "user", "content": "Hi"},
                               {"role": "assistant", "content": "Hello"}]
    assert call["session_id"] == "api:anon" and call["domains"] is None
    assert (call["params"].max_new_tokens, call["params"].seed) == (7, 3)
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "alpha"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "The fee is 148.50."}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 50, "completion_tokens": 9, "total_tokens": 59}
    strata = body["strata"]
    assert strata["mode"] == "adapter" and strata["ledger_id"] == "row-1"
    assert strata["cost_usd"] > 0 and "system message" in strata["notes"][0]


def test_sampling_parameters_map_to_the_generator(api):
    client, pipeline, _ = api
    chat(client)
    chat(client, max_tokens=5, max_completion_tokens=9, temperature=0.7, top_p=0.5)
    chat(client, top_p=0, temperature=1.0)
    default, sampled, greedy = (call["params"] for call in pipeline.calls)
    assert default is None  # the generator's own defaults
    assert (sampled.max_new_tokens, sampled.temperature, sampled.top_p) == (9, 0.7, 0.5)
    assert greedy.temperature == 0.0


def test_streaming_sends_role_pieces_final_strata_usage_and_done(api):
    client, _, _ = api
    response = chat(client, model="strata-base", stream=True,
                    stream_options={"include_usage": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = events(response)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "The fee is 148.50."
    final, usage = chunks[-2], chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop" and final["strata"]["mode"] == "base"
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 59
    without = events(chat(client, model="strata-base", stream=True))
    assert "usage" not in without[-1] and without[-1]["strata"]["reason"]


def test_stop_sequences_cut_streamed_and_whole_answers(api):
    client, pipeline, _ = api
    pipeline.script = {"pieces": [" The fee", " is 14", "8.50."], "text": "The fee is 148.50."}
    chunks = events(chat(client, model="strata-base", stream=True, stop=["is 1", "zzz"]))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "The fee " and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    body = chat(client, model="strata-base", stop="148").json()
    assert body["choices"][0]["message"]["content"] == "The fee is "


def test_a_checked_answer_streams_the_text_the_ledger_keeps(api):
    client, pipeline, _ = api
    pipeline.script = {"pieces": ["made ", "up"], "text": "made up",
                       "final": '"The fee is 148.50." [1]'}
    chunks = events(chat(client, model="strata-prompt", stream=True))
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert pieces == ['"The fee is 148.50." [1]']
    assert chunks[-1]["strata"]["replaced"] and chunks[-1]["strata"]["sources"][0]["name"]


# --- refusals -----------------------------------------------------------------------------
@pytest.mark.parametrize("body, param", [
    ({"messages": QUESTION}, "model"),
    ({"model": "strata"}, "messages"),
    ({"model": "strata", "messages": []}, "messages"),
    ({"model": "strata", "messages": "hi"}, "messages"),
    ({"model": "strata", "messages": [{"role": "assistant", "content": "hi"}]}, "messages"),
    ({"model": "strata", "messages": [{"role": "user", "content": "  "}]}, "messages[0]"),
    ({"model": "strata", "messages": [{"role": "tool", "content": "x"}, *QUESTION]},
     "messages[0].role"),
    ({"model": "strata", "messages": [{"role": "user", "content": 5}]},
     "messages[0].content"),
    ({"model": "strata", "messages": QUESTION, "max_tokens": "ten"}, "max_tokens"),
    ({"model": "strata", "messages": QUESTION, "max_tokens": 0}, "max_tokens"),
    ({"model": "strata", "messages": QUESTION, "max_completion_tokens": 10**6},
     "max_completion_tokens"),
    ({"model": "strata", "messages": QUESTION, "temperature": 3}, "temperature"),
    ({"model": "strata", "messages": QUESTION, "top_p": 1.5}, "top_p"),
    ({"model": "strata", "messages": QUESTION, "seed": -1}, "seed"),
    ({"model": "strata", "messages": QUESTION, "seed": True}, "seed"),
    ({"model": "strata", "messages": QUESTION, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": "strata", "messages": QUESTION, "stop": [""]}, "stop"),
    ({"model": "strata", "messages": QUESTION, "n": 2}, "n"),
    ({"model": "strata", "messages": QUESTION, "stream": "yes"}, "stream"),
])
def test_bad_requests_are_400_naming_the_parameter(api, body, param):
    client, pipeline, _ = api
    response = client.post("/v1/chat/completions", json=body)
    assert assert_error(response, 400, param)["type"] == "invalid_request_error"
    assert pipeline.calls == []


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
def test_a_body_that_is_no_json_object_is_400(api, raw):
    client, _, _ = api
    response = client.post("/v1/chat/completions", content=raw,
                           headers={"content-type": "application/json"})
    assert_error(response, 400, code="invalid_json")


def test_unknown_models_and_paths_are_404_in_openais_shape(api):
    client, pipeline, _ = api
    error = assert_error(chat(client, model="gpt-4o"), 404, "model", "model_not_found")
    assert "strata-prompt" in error["message"]
    assert "no weights" in assert_error(chat(client, model="broken"), 404, "model")["message"]
    assert_error(client.post("/v1/completions", json={}), 404)
    assert pipeline.calls == []


def test_pipeline_refusals_and_failures_keep_the_app_running(api):
    client, pipeline, _ = api
    pipeline.script = {"error": StrataError("the question is too long")}
    assert "too long" in assert_error(chat(client), 400)["message"]
    pipeline.script = {"error": AdapterError("unknown adapter 'alpha'")}
    assert_error(chat(client, model="alpha"), 404, "model", "model_not_found")
    pipeline.script = {"error": RuntimeError("boom")}
    assert assert_error(chat(client), 500)["type"] == "server_error"
    pipeline.script = {"pieces": ["half ", None]}
    chunks = events(chat(client, model="strata-base", stream=True))
    assert chunks[-1]["error"]["type"] == "server_error"
    pipeline.script = {}
    assert chat(client).status_code == 200


# --- keys and the queue ------------------------------------------------------------------
def test_api_keys_are_required_when_set(tmp_path):
    client, pipeline, _ = client_for(tmp_path, api_keys="k-one, k-two", auth="alice:secret")
    assert_error(chat(client), 401, code="missing_api_key")
    assert_error(chat(client, {"Authorization": "Bearer nope"}), 401, code="invalid_api_key")
    assert_error(chat(client, {"Authorization": "Bearer alice:secret"}), 401)
    assert_error(client.get("/v1/models"), 401)
    assert chat(client, {"Authorization": "Bearer k-two"}).status_code == 200
    assert client.get("/v1/models", headers={"Authorization": "Bearer k-one"}).status_code == 200
    session = pipeline.calls[0]["session_id"]
    assert session.startswith("api:key-") and "k-two" not in session


def test_without_keys_the_web_logins_open_the_api(tmp_path):
    client, pipeline, _ = client_for(tmp_path, auth="alice:secret", private_uploads=True)
    assert_error(chat(client), 401)
    assert_error(chat(client, {"Authorization": "Bearer alice:wrong"}), 401)
    assert chat(client, {"Authorization": "Bearer alice:secret"}).status_code == 200
    [call] = pipeline.calls
    assert call["session_id"] == "api:user:alice"
    assert call["domains"][0] == "water" and call["domains"][1].startswith("session-")


def test_with_neither_the_api_is_open_whatever_key_is_sent(api):
    client, _, _ = api
    assert chat(client, {"Authorization": "Bearer sk-anything"}).status_code == 200
    assert client.get("/v1/models").status_code == 200


def test_a_full_queue_is_429_with_retry_after(tmp_path):
    client, pipeline, api = client_for(tmp_path, max_batch=1, max_queue=1)
    held = [api.state.slots.take(), api.state.slots.take()]
    response = chat(client)
    assert_error(response, 429, code="queue_full")
    assert response.headers["retry-after"]
    for slot in held:
        slot.release()
    pipeline.script = {"error": QueueFull("the model is busy")}  # the web app filled it
    assert_error(chat(client), 429, code="queue_full")
    pipeline.script = {}
    assert chat(client).status_code == 200
    assert events(chat(client, stream=True))[-1]["choices"][0]["finish_reason"] == "stop"
    assert api.state.slots.used == 0  # streamed and whole answers gave their slot back


def test_the_api_sits_beside_gradio_on_one_app(tmp_path):
    client, _, _ = client_for(tmp_path, gradio=True)
    assert client.get("/v1/models").json()["data"][0]["id"] == "strata"
    assert chat(client).json()["choices"][0]["message"]["content"]
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def test_a_client_that_leaves_mid_stream_cancels_the_answer_and_frees_its_slot(tmp_path):
    import anyio

    from assistant.api import app as api_app
    from assistant.api.requests import parse_chat

    _, pipeline, api = client_for(tmp_path)
    pipeline.script = {"pieces": ["one ", "two ", "three"]}
    request = parse_chat({"model": "strata-base", "messages": QUESTION, "stream": True})
    services = SimpleNamespace(settings=Settings(data_dir=tmp_path), pipeline=pipeline)
    caller = api.state.gate.admit(None)
    route = SimpleNamespace(mode="base", adapter=None)
    slot = api.state.slots.take()
    run = api_app._start(services, api_app.Access(services.settings), caller, request, route)

    async def leave_after_two_events():
        events = api_app._sse(run, request, slot)
        assert "assistant" in await events.__anext__()
        assert "one" in await events.__anext__()
        await events.aclose()  # what Starlette does when the client goes away

    anyio.run(leave_after_two_events)
    assert pipeline.cancelled == 1 and api.state.slots.used == 0
