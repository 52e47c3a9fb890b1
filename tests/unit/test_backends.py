"""The openai backend against a scripted OpenAI-compatible server (httpx's MockTransport):
the streaming contract, usage and timings, adapters loaded at run time, clear errors, and
re-ranking by prompt log-probabilities. The real vLLM server is the scale tier's."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from assistant.backends.base import describe_settings, estimate_tokens
from assistant.backends.logprobs import ServerLikelihood
from assistant.backends.openai import OpenAIBackend, served_base, tokenizer_dir
from assistant.backends.server_adapters import ServerAdapters
from assistant.errors import AdapterError, ScoresUnavailable, StrataError
from assistant.models.adapters import AdapterManager
from assistant.models.generation import SamplingParams
from assistant.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEMO = "harrowgate-water"
URL = "http://vllm.test/v1"
MESSAGES = [{"role": "user", "content": "What is the new connection fee?"}]


class FakeServer:
    """A vLLM-like server: chat completions streamed as server-sent events, /models,
    /load_lora_adapter and /unload_lora_adapter, /completions with prompt_logprobs."""

    def __init__(self, pieces=("The fee", " is 148.50."), served=("smollm2-135m",),
                 refuse_loading=False, logprobs=True):
        self.pieces, self.served = list(pieces), set(served)
        self.refuse_loading, self.logprobs = refuse_loading, logprobs
        self.requests: list[tuple[str, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1")
        body = json.loads(request.content) if request.content else {}
        self.requests.append((path, body))
        if path == "/models":
            return httpx.Response(200, json={"data": [{"id": m} for m in sorted(self.served)]})
        if path == "/load_lora_adapter":
            if self.refuse_loading:
                return httpx.Response(400, json={"error": {"message": "runtime loading is off"}})
            self.served.add(body["lora_name"])
            return httpx.Response(200, text="Success")
        if path == "/unload_lora_adapter":
            self.served.discard(body["lora_name"])
            return httpx.Response(200, text="Success")
        if path == "/chat/completions":
            return self.chat(body)
        if path == "/completions":
            return self.completions(body)
        return httpx.Response(404, json={"error": {"message": f"no route {path}"}})

    def chat(self, body: dict) -> httpx.Response:
        if body["model"] not in self.served:
            return httpx.Response(404, json={"error": {"message": f"model {body['model']} "
                                                                  "does not exist"}})
        events = [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
                  for p in self.pieces]
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        events.append({"choices": [], "usage": {"prompt_tokens": 31, "completion_tokens": 7}})
        text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})

    def completions(self, body: dict) -> httpx.Response:
        if not self.logprobs:
            return httpx.Response(400, json={"error": {"message": "unknown field"}})
        (row,) = body["prompt"]  # one prompt per request (see logprobs.py)
        # the log-probability of each prompt token: minus the number of "F" (70) tokens, so
        # a passage with an F scores worse; the first position has none, as vLLM's
        value = -1.0 - row.count(70)
        values = [None] + [{str(t): {"logprob": value}} for t in row[1:]]
        return httpx.Response(200, json={"choices": [{"index": 0, "prompt_logprobs": values}],
                                         "usage": {"prompt_tokens": 50}})


@pytest.fixture
def served_adapters(tmp_path):
    folder = tmp_path / "adapters"
    folder.mkdir()
    shutil.copytree(ROOT / "adapters" / DEMO, folder / DEMO)
    return folder


def build(server: FakeServer, adapters_dir: Path, allowed: bool = True, **kw) -> OpenAIBackend:
    http = httpx.Client(base_url=URL, transport=httpx.MockTransport(server))
    settings = Settings(_env_file=None, backend="openai", adapters_dir=adapters_dir)
    manager = AdapterManager(adapters_dir, served_base(settings))
    adapters = ServerAdapters(http, manager, "/srv/adapters", allowed)
    return OpenAIBackend(http, "smollm2-135m", adapters=adapters, **kw)


def test_streams_pieces_with_the_servers_usage_and_timings(served_adapters):
    server = FakeServer()
    backend = build(server, served_adapters)
    stream = backend.stream(MESSAGES, SamplingParams(max_new_tokens=24))
    assert list(stream) == ["The fee", " is 148.50."]
    gen = stream.result
    assert gen.text == "The fee is 148.50." and gen.finish_reason == "stop"
    assert (gen.usage.prompt_tokens, gen.usage.completion_tokens) == (31, 7)
    assert gen.timings.total_ms >= gen.timings.ttft_ms > 0
    path, body = server.requests[-1]
    assert path == "/chat/completions" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["model"] == "smollm2-135m" and body["max_tokens"] == 24
    assert body["repetition_penalty"] == SamplingParams().repetition_penalty


def test_sampling_extras_can_be_left_out_for_strict_servers(served_adapters):
    server = FakeServer()
    build(server, served_adapters, sampling_extras=False).generate(MESSAGES)
    body = server.requests[-1][1]
    assert not {"top_k", "repetition_penalty", "ignore_eos"} & set(body)


def test_adapter_mode_loads_a_missing_adapter_and_sends_its_name_as_the_model(
        served_adapters):
    server = FakeServer()
    backend = build(server, served_adapters)
    gen = backend.generate(MESSAGES, adapter=DEMO)
    assert gen.adapter == DEMO and server.requests[-1][1]["model"] == DEMO
    loads = [body for path, body in server.requests if path == "/load_lora_adapter"]
    assert loads == [{"lora_name": DEMO, "lora_path": f"/srv/adapters/{DEMO}"}]
    backend.generate(MESSAGES, adapter=DEMO)  # known now: no second load
    assert sum(path == "/load_lora_adapter" for path, _ in server.requests) == 1


def test_an_adapter_the_server_started_with_is_not_loaded_again(served_adapters):
    server = FakeServer(served=("smollm2-135m", DEMO))
    build(server, served_adapters).generate(MESSAGES, adapter=DEMO)
    assert not any(path == "/load_lora_adapter" for path, _ in server.requests)


def test_a_retrained_adapter_is_reloaded(served_adapters):
    server = FakeServer()
    backend = build(server, served_adapters)
    backend.generate(MESSAGES, adapter=DEMO)
    weights = served_adapters / DEMO / "adapter_model.safetensors"
    later = time.time() + 10
    os.utime(weights, (later, later))  # as a new training run would leave it
    backend.generate(MESSAGES, adapter=DEMO)
    paths = [path for path, _ in server.requests if "lora" in path]
    assert paths == ["/load_lora_adapter", "/unload_lora_adapter", "/load_lora_adapter"]


def test_a_refused_adapter_fails_naming_the_adapter_and_the_server(served_adapters):
    backend = build(FakeServer(refuse_loading=True), served_adapters)
    with pytest.raises(AdapterError) as err:
        backend.stream(MESSAGES, adapter=DEMO)
    assert DEMO in str(err.value) and URL in str(err.value)
    assert "runtime loading is off" in str(err.value)


def test_no_runtime_loading_when_it_is_turned_off(served_adapters):
    server = FakeServer()
    with pytest.raises(AdapterError, match="ASSISTANT_BACKEND_LOAD_ADAPTERS") as err:
        build(server, served_adapters, allowed=False).stream(MESSAGES, adapter=DEMO)
    assert URL in str(err.value)
    assert not any(path == "/load_lora_adapter" for path, _ in server.requests)


def test_an_unknown_adapter_is_refused_before_the_server_is_asked(served_adapters):
    server = FakeServer()
    with pytest.raises(AdapterError, match="unknown adapter 'nope'"):
        build(server, served_adapters).stream(MESSAGES, adapter="nope")
    assert server.requests == []


def test_a_server_error_names_the_server_and_the_model(served_adapters):
    server = FakeServer(served=())
    with pytest.raises(StrataError, match="refused the request for model 'smollm2-135m'") as err:
        build(server, served_adapters).generate(MESSAGES)
    assert URL in str(err.value) and "does not exist" in str(err.value)


def test_an_unreachable_server_says_which_setting_to_check(served_adapters):
    def down(request):
        raise httpx.ConnectError("connection refused")

    http = httpx.Client(base_url=URL, transport=httpx.MockTransport(down))
    with pytest.raises(StrataError, match="ASSISTANT_BACKEND_URL"):
        OpenAIBackend(http, "smollm2-135m").generate(MESSAGES)


def test_closing_the_stream_cancels_the_answer():
    closed = threading.Event()

    def slow(request):
        def events():
            for i in range(50):
                chunk = {"choices": [{"index": 0, "delta": {"content": f" w{i}"}}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
                closed.wait(5)  # the reader closes the stream after the first piece

        return httpx.Response(200, content=events())

    http = httpx.Client(base_url=URL, transport=httpx.MockTransport(slow))
    stream = OpenAIBackend(http, "smollm2-135m").stream(MESSAGES)
    pieces = iter(stream)
    assert next(pieces) == " w0"
    stream.close()
    closed.set()
    rest = list(pieces)
    assert len(rest) < 49 and stream.result.finish_reason == "cancelled"
    assert stream.result.extra == {"usage": "estimated"}  # no usage came: counted here


def test_token_counting_is_estimated_and_says_so_without_local_files(tmp_path):
    settings = Settings(_env_file=None, backend="openai", backend_model="some/hosted-model",
                        cache_dir=tmp_path)
    assert tokenizer_dir(settings) is None
    http = httpx.Client(base_url=URL, transport=httpx.MockTransport(FakeServer()))
    backend = OpenAIBackend(http, "some/hosted-model", tokenizer_folder=None)
    assert backend.token_counting.startswith("estimate")
    assert backend.count_tokens("twelve chars") == estimate_tokens("twelve chars") == 3


def test_the_served_base_loads_nothing_and_names_the_served_model():
    settings = Settings(_env_file=None, backend="openai", backend_model="smollm2-135m")
    base = served_base(settings)
    assert base.model is None and base.name == "smollm2-135m" and base.quant == "served"
    assert describe_settings(settings)["name"] == "openai"
    assert describe_settings(Settings(_env_file=None))["name"] == "auto"  # llama.cpp or local
    assert describe_settings(Settings(_env_file=None, backend="local"))["name"] == "local"


def test_the_llamacpp_backend_needs_a_gguf_model_and_says_which_have_one():
    from assistant.backends.llamacpp import from_settings
    from assistant.errors import StrataError

    settings = Settings(_env_file=None, backend="llamacpp", base_model="someone/hf-model")
    with pytest.raises(StrataError, match="reads a GGUF file.*smollm2-135m"):
        from_settings(settings, adapters=None)  # type: ignore[arg-type]
    assert describe_settings(settings)["name"] == "llamacpp"


class CharTokenizer:
    """One token per character (its code point); the chat template adds a marker."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}

    def apply_chat_template(self, messages, **_):
        return {"input_ids": [1] + [ord(c) for c in messages[0]["content"]] + [2]}


def test_prompt_logprobs_score_each_passage_by_the_questions_tokens():
    server = FakeServer()
    http = httpx.Client(base_url=URL, transport=httpx.MockTransport(server))
    scorer = ServerLikelihood(http, "smollm2-135m", CharTokenizer)
    scores, tokens = scorer("fee?", ["A fee.", "Fees."])
    assert scores == [-1.0, -2.0] and tokens == 100
    assert [path for path, _ in server.requests] == ["/completions"] * 2  # one per sentence
    body = server.requests[-1][1]
    assert body["prompt_logprobs"] == 0 and body["model"] == "smollm2-135m"  # adapters off


def test_server_scoring_is_off_unless_turned_on():
    server = FakeServer()
    http = httpx.Client(base_url=URL, transport=httpx.MockTransport(server))
    with pytest.raises(ScoresUnavailable, match="ASSISTANT_BACKEND_PROMPT_LOGPROBS"):
        ServerLikelihood(http, "m", CharTokenizer, enabled=False)("fee?", ["A fee.", "B."])
    assert server.requests == []


def test_a_server_without_prompt_logprobs_falls_back_once_and_remembers():
    server = FakeServer(logprobs=False)
    http = httpx.Client(base_url=URL, transport=httpx.MockTransport(server))
    scorer = ServerLikelihood(http, "smollm2-135m", CharTokenizer)
    for _ in range(2):
        with pytest.raises(ScoresUnavailable):
            scorer("fee?", ["A fee.", "Hours."])
    assert len(server.requests) == 1


def test_no_local_tokenizer_means_no_server_scoring():
    http = httpx.Client(base_url=URL, transport=httpx.MockTransport(FakeServer()))
    with pytest.raises(ScoresUnavailable, match="tokenizer"):
        ServerLikelihood(http, "m", lambda: None)("fee?", ["A fee.", "Hours."])


def test_services_with_the_openai_backend_load_no_model(tmp_path, served_adapters):
    from assistant.backends.openai import OpenAIBackend as Remote
    from assistant.services import Services
    from tests.retrieval_helpers import HashEmbedder

    settings = Settings(_env_file=None, backend="openai", backend_url=URL,
                        data_dir=tmp_path / "data", adapters_dir=served_adapters)
    services = Services(settings, embedder=HashEmbedder())
    pipeline = services.pipeline
    assert isinstance(pipeline.backend, Remote) and pipeline.base.model is None
    assert pipeline.reranker is services.backend.scorer
    assert services.adapters.info(DEMO).ok  # validated against the served base's name
    # training stays local, on the values the server loads (the converted base), not NF4
    assert services.training.quant == "fp32"
    assert "generator" not in services._parts  # the local generator was never built
