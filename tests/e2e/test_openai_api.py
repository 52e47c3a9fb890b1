"""Strata's /v1 endpoint driven by real OpenAI clients against a real server.

The app (web app and API on one port, uvicorn on 127.0.0.1, a free port) runs over a tiny
random model and the hashing embedder, with an API key set; the module's fixture stops it
at the end, also when a test fails. The official ``openai`` client and LangChain's
``ChatOpenAI`` list the models, answer in every mode (streamed and whole), carry a
three-message conversation, and get the errors OpenAI would give; every answered call
leaves exactly one ledger row, and a refused one leaves none.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

openai = pytest.importorskip("openai")
langchain_openai = pytest.importorskip("langchain_openai")

KEY = "sk-strata-e2e"
MODELS = ["strata", "strata-prompt", "strata-layered", "strata-base", "alpha"]
MODES = {"strata-prompt": "prompt", "strata-layered": "layered", "strata-base": "base",
         "alpha": "adapter"}
QUESTION = "When does the Kestle Top car park open?"


@pytest.fixture(scope="module")
def served(tiny_app_factory):
    services, url = tiny_app_factory(api_keys=KEY)
    return services, url + "/v1"


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served[1], api_key=KEY, max_retries=0, timeout=60)


def rows(services):
    return len(services.ledger.rows())


class OneRow:
    """Asserts that the block leaves exactly ``expected`` new ledger rows."""

    def __init__(self, services, expected=1):
        self.services, self.expected = services, expected

    def __enter__(self):
        self.before = rows(self.services)
        return self

    def __exit__(self, kind, *_):
        if kind is None:
            assert rows(self.services) - self.before == self.expected


def check_route(strata, model):
    assert strata["ledger_id"] and strata["reason"] and strata["cost_usd"] > 0
    if model in MODES:
        assert strata["mode"] == MODES[model]
    assert (strata["adapter"] == "alpha") == (strata["mode"] in ("adapter", "layered"))
    assert bool(strata["sources"]) == (strata["mode"] in ("prompt", "layered"))


def test_the_openai_client_lists_one_model_per_mode_and_adapter(client):
    assert [m.id for m in client.models.list()] == MODELS
    assert client.models.retrieve("alpha").model_extra["strata"]["mode"] == "adapter"


@pytest.mark.parametrize("model", MODELS)
def test_the_openai_client_gets_a_whole_answer_in_every_mode(served, client, model):
    services, _ = served
    with OneRow(services):
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": QUESTION}], max_tokens=6,
            temperature=0)
    assert reply.object == "chat.completion" and reply.model == model
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    strata = reply.model_extra["strata"]
    check_route(strata, model)
    [row] = [r for r in services.ledger.rows() if r["id"] == strata["ledger_id"]]
    assert row["session_id"] == strata_session(row) and row["error"] is None
    assert row["completion_tokens"] == reply.usage.completion_tokens
    assert row["answer"] == reply.choices[0].message.content


def strata_session(row):
    assert row["session_id"].startswith("api:key-") and KEY not in row["session_id"]
    return row["session_id"]


@pytest.mark.parametrize("model", MODELS)
def test_the_openai_client_streams_an_answer_in_every_mode(served, client, model):
    services, _ = served
    with OneRow(services):
        stream = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": QUESTION}], max_tokens=6,
            stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1
    check_route(finals[0].model_extra["strata"], model)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    ledger_id = finals[0].model_extra["strata"]["ledger_id"]
    [row] = [r for r in services.ledger.rows() if r["id"] == ledger_id]
    assert row["answer"] == text.strip() or row["grounding"]  # a checked answer may quote


def test_a_three_message_conversation_reaches_the_pipeline_as_history(served, client):
    services, _ = served
    messages = [{"role": "user", "content": QUESTION},
                {"role": "assistant", "content": "It opens at 07:30."},
                {"role": "user", "content": "And when does it close?"}]
    with OneRow(services):
        reply = client.chat.completions.create(model="strata-base", messages=messages,
                                               max_tokens=5)
    strata = reply.model_extra["strata"]
    assert strata["history_turns"] == 2
    [row] = [r for r in services.ledger.rows() if r["id"] == strata["ledger_id"]]
    assert row["question"] == "And when does it close?"


@pytest.mark.parametrize("model", MODELS)
def test_langchain_chat_openai_invokes_and_streams_in_every_mode(served, model):
    from langchain_core.messages import AIMessage, HumanMessage

    services, base_url = served
    llm = langchain_openai.ChatOpenAI(model=model, base_url=base_url, api_key=KEY,
                                      max_tokens=6, max_retries=0, timeout=60)
    with OneRow(services):
        message = llm.invoke(QUESTION)
    assert isinstance(message, AIMessage)
    assert message.usage_metadata["output_tokens"] > 0
    with OneRow(services):
        pieces = list(llm.stream([HumanMessage(QUESTION)]))
    assert pieces and all(p.type == "AIMessageChunk" for p in pieces)


def test_langchain_carries_a_conversation(served):
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    services, base_url = served
    llm = langchain_openai.ChatOpenAI(model="strata-prompt", base_url=base_url, api_key=KEY,
                                      max_tokens=6, max_retries=0)
    with OneRow(services):
        reply = llm.invoke([SystemMessage("Answer briefly."), HumanMessage(QUESTION),
                            AIMessage("It opens at 07:30."), HumanMessage("And on Sundays?")])
    assert reply.response_metadata["finish_reason"] in ("stop", "length")


def test_a_wrong_key_is_refused_and_leaves_no_row(served):
    services, base_url = served
    wrong = openai.OpenAI(base_url=base_url, api_key="sk-wrong", max_retries=0)
    with OneRow(services, expected=0):
        with pytest.raises(openai.AuthenticationError) as refused:
            wrong.chat.completions.create(model="strata",
                                          messages=[{"role": "user", "content": QUESTION}])
        with pytest.raises(openai.AuthenticationError):
            langchain_openai.ChatOpenAI(model="strata", base_url=base_url, api_key="sk-wrong",
                                        max_retries=0).invoke(QUESTION)
    assert refused.value.status_code == 401
    assert refused.value.body["code"] == "invalid_api_key"


def test_an_unknown_model_is_404_and_leaves_no_row(served, client):
    services, _ = served
    with OneRow(services, expected=0), pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o",
                                       messages=[{"role": "user", "content": QUESTION}])
    assert missing.value.body["code"] == "model_not_found"
    assert "strata-prompt" in missing.value.body["message"]
