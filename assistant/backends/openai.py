"""The openai backend: answers from any OpenAI-compatible server (vLLM, LoRAX, llama.cpp's
server, a hosted API), so Strata runs on the engine its users already deploy.

Adapter mode sends the adapter's name as the request's ``model`` (vLLM's multi-LoRA);
adapters the server lacks are registered at run time (server_adapters.py). Usage is the
server's own (``stream_options.include_usage``); the timings are taken here as the local
generator takes them. No model is loaded in this process: the ledger's base model is the
served one (``served_base``), and tokens are counted by the served model's tokenizer where
its files are on this machine, else estimated (``token_counting`` says which).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.backends.base import ESTIMATE, detail, estimate_tokens
from assistant.errors import StrataError
from assistant.models.base_models import LoadedModel
from assistant.models.decoding import timings
from assistant.models.generation import Generation, SamplingParams, TokenStream, Usage
from assistant.models.profiles import answering_model

if TYPE_CHECKING:
    import httpx

    from assistant.backends.logprobs import ServerLikelihood
    from assistant.backends.server_adapters import ServerAdapters
    from assistant.models.adapters import AdapterManager
    from assistant.models.generation import Message
    from assistant.settings import Settings

log = logging.getLogger(__name__)
SERVED = "served"  # the ledger's quantization for a served model: the server decides it


def served_base(settings: Settings) -> LoadedModel:
    """The served base model as the pipeline and the adapter manager see it: a name (for
    the ledger and for checking which base an adapter was trained for), no weights."""
    name = answering_model(settings)
    return LoadedModel(name=name, model=None, tokenizer=None, quant=SERVED,
                       device=settings.backend_url, footprint_bytes=0, load_seconds=0.0,
                       source=name)


def client(settings: Settings) -> httpx.Client:
    import httpx

    headers = {"Authorization": f"Bearer {settings.backend_api_key}"} \
        if settings.backend_api_key else {}
    return httpx.Client(base_url=settings.backend_url.rstrip("/"), headers=headers,
                        timeout=httpx.Timeout(settings.backend_timeout, connect=10.0))


def tokenizer_dir(settings: Settings) -> Path | None:
    """A local folder with the served model's tokenizer: Strata's converted cache of a
    registry model, or a model directory; None when neither is on this machine."""
    model = answering_model(settings)
    for folder in (settings.cache_dir / "models" / model, Path(model).expanduser()):
        if (folder / "tokenizer_config.json").is_file():
            return folder
    return None


def from_settings(settings: Settings, adapters: AdapterManager) -> OpenAIBackend:
    """The backend the settings describe, with run-time adapter loading and re-ranking by
    the server's prompt log-probabilities."""
    from assistant.backends.logprobs import ServerLikelihood
    from assistant.backends.server_adapters import ServerAdapters

    http = client(settings)
    model = answering_model(settings)
    server_dir = settings.backend_adapters_dir or str(settings.adapters_dir.resolve())
    backend = OpenAIBackend(
        http, model, defaults=SamplingParams.from_settings(settings),
        adapters=ServerAdapters(http, adapters, server_dir, settings.backend_load_adapters),
        sampling_extras=settings.backend_sampling_extras,
        tokenizer_folder=tokenizer_dir(settings))
    backend.scorer = ServerLikelihood(http, model, backend.tokenizer,
                                      enabled=settings.backend_prompt_logprobs)
    return backend


class OpenAIBackend:
    """Streams chat completions from an OpenAI-compatible server."""

    name = "openai"
    quantization: str | None = None  # the server decides: the ledger records SERVED, the base's

    def __init__(self, http: httpx.Client, model: str, *, adapters: ServerAdapters | None = None,
                 defaults: SamplingParams | None = None, sampling_extras: bool = True,
                 tokenizer_folder: Path | None = None) -> None:
        self.http, self.model, self.adapters = http, model, adapters
        self.url = str(http.base_url).rstrip("/")
        self.defaults = defaults or SamplingParams()
        self.sampling_extras = sampling_extras
        self.tokenizer_folder = tokenizer_folder
        self.token_counting = "tokenizer" if tokenizer_folder else ESTIMATE
        self._tokenizer: Any = None
        self.scorer: ServerLikelihood | None = None  # question likelihood, where it scores
        self._lock = threading.Lock()
        if not tokenizer_folder:
            log.warning("no local tokenizer for %s: context budgets use an %s", model, ESTIMATE)

    # --- the backend interface ----------------------------------------------------------
    def stream(self, messages: list[Message], params: SamplingParams | None = None,
               adapter: str | None = None) -> TokenStream:
        params = params or self.defaults
        model = self.model
        if adapter is not None:
            if self.adapters is None:
                raise StrataError(f"adapters are not available through the server at {self.url}")
            model = self.adapters.ensure(adapter)  # refuses before the answer starts
        out = TokenStream()
        body = self.request(messages, params, model)
        worker = threading.Thread(target=self._run, args=(body, adapter, out), daemon=True)
        worker.start()
        return out

    def generate(self, messages: list[Message], params: SamplingParams | None = None,
                 adapter: str | None = None) -> Generation:
        return self.stream(messages, params, adapter).wait()

    def count_tokens(self, text: str) -> int:
        tokenizer = self.tokenizer()
        if tokenizer is None:
            return estimate_tokens(text)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "model": self.model,
                "token_counting": self.token_counting,
                "load_adapters": bool(self.adapters and self.adapters.allowed)}

    def tokenizer(self) -> Any:
        """The served model's tokenizer from local files (loaded once), or None."""
        if self.tokenizer_folder is None:
            return None
        with self._lock:
            if self._tokenizer is None:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_folder)
        return self._tokenizer

    # --- one request --------------------------------------------------------------------
    def request(self, messages: list[Message], params: SamplingParams, model: str
                ) -> dict[str, Any]:
        """The chat completion request for these sampling settings."""
        body: dict[str, Any] = {
            "model": model, "messages": messages, "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": params.max_new_tokens, "temperature": params.temperature,
            "top_p": params.top_p if params.temperature > 0 else 1.0,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if self.sampling_extras:  # vLLM's extra sampling parameters
            body["repetition_penalty"] = params.repetition_penalty
            if params.top_k:
                body["top_k"] = params.top_k
            if params.ignore_eos:
                body["ignore_eos"] = True
        return body

    def _run(self, body: dict[str, Any], adapter: str | None, out: TokenStream) -> None:
        try:
            out.result = self._read(body, out)
            out.result.adapter = adapter
            out.end()
        except BaseException as exc:  # noqa: BLE001 - raised to the reader by TokenStream
            out.end(exc)

    def _read(self, body: dict[str, Any], out: TokenStream) -> Generation:
        import httpx

        started, first = time.perf_counter(), None
        pieces: list[str] = []
        usage: dict[str, Any] = {}
        finish = "stop"
        try:
            with self.http.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise self.refused(response, body["model"])
                for chunk in _events(response):
                    if out.cancelled.is_set():
                        finish = "cancelled"
                        break  # leaving the block closes the connection: the server stops
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or ():
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            first = first or time.perf_counter()
                            pieces.append(piece)
                            out.put(piece)
                        finish = choice.get("finish_reason") or finish
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from exc
        text = "".join(pieces)
        counted = self._usage(usage, body["messages"], text)
        return Generation(text=text, usage=counted, finish_reason=finish,
                          timings=timings(started, first, time.perf_counter(),
                                          counted.completion_tokens),
                          extra={} if usage else {"usage": "estimated"})

    def _usage(self, usage: dict[str, Any], messages: list[Message], text: str) -> Usage:
        """The server's usage; counted here when it sent none (a cancelled stream)."""
        if usage:
            return Usage(int(usage.get("prompt_tokens") or 0),
                         int(usage.get("completion_tokens") or 0))
        prompt = sum(self.count_tokens(m["content"]) for m in messages)
        return Usage(prompt, self.count_tokens(text))

    # --- errors that say what to do ------------------------------------------------------
    def unreachable(self, exc: Exception) -> StrataError:
        return StrataError(f"the generation server at {self.url} did not answer ({exc}); "
                           "start it or set ASSISTANT_BACKEND_URL")

    def refused(self, response: httpx.Response, model: str) -> StrataError:
        return StrataError(f"the generation server at {self.url} refused the request for "
                           f"model {model!r}: HTTP {response.status_code} {detail(response)}")


def _events(response: httpx.Response) -> Any:
    """The JSON objects of a server-sent event stream, up to ``data: [DONE]``."""
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        data = line[len("data:"):].strip()
        if data == "[DONE]":
            return
        yield json.loads(data)

