"""The ``/v1`` routes: ``GET /v1/models`` and ``POST /v1/chat/completions``.

``create_api(services)`` builds them over whatever it is given (``ApiServices``: the
app's Services, or a test's fake), so nothing here reads a global. The routes live in
their own FastAPI app mounted at ``/v1``: every error under that prefix, an unknown path
included, is then in OpenAI's shape, while the Gradio app beside it keeps its own handlers.

Each completion takes one of ``max_batch + max_queue`` slots (the answers the model
generates together plus those that may wait for it) for as long as it runs, streamed ones
until the last byte; with none free, or when the model's own queue (shared with the web
app) is full, the request is refused at once with 429 and Retry-After instead of waiting
without end. The bound holds for a remote backend too, which has no local queue.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator, Generator
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.access import Access, Visitor
from assistant.api import answers
from assistant.api.auth import Caller, Gate
from assistant.api.catalog import Catalog, Route
from assistant.api.errors import ApiError, error_body
from assistant.api.metrics import HasTelemetry, metrics_endpoint
from assistant.api.requests import ChatRequest, parse_body, parse_chat
from assistant.errors import AdapterError, AnswerCancelled, QueueFull, StrataError
from assistant.models.generation import SamplingParams

if TYPE_CHECKING:
    from assistant.answering.pipeline import Pipeline
    from assistant.retrieval.store import KnowledgeStore
    from assistant.settings import Settings

log = logging.getLogger(__name__)
RETRY_AFTER_S = "2"


class ApiServices(HasTelemetry, Protocol):
    """What the routes use of the app's services: its settings, its pipeline (built on the
    first request), its knowledge base (the domains a private visitor may read) and its
    telemetry (``GET /metrics``)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def pipeline(self) -> Pipeline: ...

    @property
    def store(self) -> KnowledgeStore: ...


def queue_full(message: str) -> ApiError:
    return ApiError(429, message, code="queue_full", headers={"Retry-After": RETRY_AFTER_S})


class Slots:
    """A non-blocking counter of running completions; each release happens once."""

    def __init__(self, size: int) -> None:
        self.size, self.used = size, 0
        self._lock = threading.Lock()

    def take(self) -> Slot:
        with self._lock:
            if self.used >= self.size:
                raise queue_full(f"The server holds {self.size} requests already; "
                                 "retry shortly.")
            self.used += 1
        return Slot(self)

    def _give_back(self) -> None:
        with self._lock:
            self.used -= 1


class Slot:
    def __init__(self, slots: Slots) -> None:
        self._slots, self._held = slots, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots._give_back()


def create_api(services: ApiServices) -> FastAPI:
    """The /v1 app over ``services``."""
    settings = services.settings
    gate, slots = Gate(settings), Slots(settings.max_batch + settings.max_queue)
    access = Access(settings)
    api = FastAPI(title="Strata OpenAI-compatible API", docs_url=None, redoc_url=None,
                  openapi_url=None)
    api.state.gate, api.state.slots = gate, slots
    api.state.metrics = metrics_endpoint(services, gate)  # GET /metrics, beside /v1 (server.py)
    _add_error_handlers(api)

    def catalog() -> Catalog:
        return Catalog(services.pipeline.adapters)

    @api.get("/models")
    async def list_models(request: Request) -> JSONResponse:
        gate.admit(request.headers.get("authorization"))
        models = await run_in_threadpool(lambda: catalog().models())
        return JSONResponse({"object": "list", "data": models})

    @api.get("/models/{model_id:path}")
    async def get_model(model_id: str, request: Request) -> JSONResponse:
        gate.admit(request.headers.get("authorization"))
        return JSONResponse(await run_in_threadpool(lambda: catalog().model(model_id)))

    @api.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        caller = gate.admit(request.headers.get("authorization"))
        chat = parse_chat(parse_body(await request.body()))
        route = await run_in_threadpool(lambda: catalog().resolve(chat.model))
        slot = slots.take()
        streaming = False
        try:
            run = await run_in_threadpool(_start, services, access, caller, chat, route)
            if chat.stream:
                streaming = True  # the stream gives the slot back when it ends
                return StreamingResponse(_sse(run, chat, slot), media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache"})
            return JSONResponse(await run_in_threadpool(_finish, run, chat.model))
        finally:
            if not streaming:
                slot.release()

    return api


def _start(services: ApiServices, access: Access, caller: Caller, chat: ChatRequest, route: Route
           ) -> answers.Completion:
    """Start the Pipeline's answer and run it to its first piece (refusals come here)."""
    pipeline = services.pipeline
    params = chat.params(SamplingParams.from_settings(services.settings))
    visitor = Visitor(user=caller.user, session=caller.session)
    try:
        domains = access.retrieval_domains(visitor, services.store) if access.private else None
        stream = pipeline.stream(chat.question, route.mode, route.adapter,
                                 session_id=caller.session, params=params, domains=domains,
                                 history=chat.history)
        run = answers.Completion(stream, chat)
        run.start()
    except Exception as exc:
        raise _as_api_error(exc) from exc
    return run


def _finish(run: answers.Completion, model: str) -> dict[str, Any]:
    try:
        return answers.completion_body(run, model)
    except Exception as exc:
        raise _as_api_error(exc) from exc


def _as_api_error(exc: Exception) -> ApiError:
    """A failure of the answer as the status OpenAI would give it; the app keeps running."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, QueueFull):
        return queue_full(str(exc))
    if isinstance(exc, AdapterError):
        return ApiError(404, str(exc), "model", "model_not_found")
    if isinstance(exc, AnswerCancelled):  # the server is stopping: another replica may answer
        return ApiError(503, str(exc), code="server_stopping",
                        headers={"Retry-After": RETRY_AFTER_S})
    if isinstance(exc, StrataError):
        return ApiError(400, str(exc))
    log.exception("chat completion failed")
    return ApiError(500, f"The answer failed: {type(exc).__name__}: {exc}")


async def _sse(run: answers.Completion, chat: ChatRequest, slot: Slot) -> AsyncIterator[str]:
    """The event stream; a client that goes away closes the answer (recorded as
    cancelled) and frees its slot.

    Each event is made in a worker thread under ``busy``. When this task is cancelled (the
    client left, or the server stops) that thread may still be inside the generator, and
    closing the generator then would raise "generator already executing": the answer is
    ended first (``cancel``), which lets the thread return, and the generator is closed
    once it has.
    """
    events = _events(run, chat)
    busy = threading.Lock()

    def step() -> str | None:
        with busy:
            return next(events, None)

    def close() -> None:
        run.stream.cancel("the reader left")
        with busy:
            events.close()
        run.close()

    try:
        while (event := await anyio.to_thread.run_sync(step)) is not None:
            if event:  # an empty one only lets a reader's leaving be noticed (answers.py)
                yield event
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(close)
        slot.release()


def _events(run: answers.Completion, chat: ChatRequest) -> Generator[str, None, None]:
    model = chat.model
    try:
        yield _data(answers.chunk(run, model, {"role": "assistant", "content": ""}))
        for piece in run.pieces():
            yield _data(answers.chunk(run, model, {"content": piece})) if piece else ""
        strata = answers.strata_field(run.answer, chat.notes)
        yield _data(answers.chunk(run, model, {}, run.finish_reason(), strata=strata))
        if chat.include_usage:
            yield _data(answers.chunk(run, model, None, usage=answers.usage(run.answer)))
    except QueueFull as exc:
        yield _data(error_body(str(exc), 429, code="queue_full"))
    except AnswerCancelled as exc:  # the server is stopping
        yield _data(error_body(str(exc), 503, code="server_stopping"))
    except StrataError as exc:
        yield _data(error_body(str(exc), 400))
    except Exception as exc:  # the stream has begun: the error travels in it
        log.exception("chat completion failed while streaming")
        yield _data(error_body(f"The answer failed: {type(exc).__name__}: {exc}", 500))
    yield "data: [DONE]\n\n"


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _add_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: "Unknown path: see GET /v1/models and POST /v1/chat/completions.",
                   405: "Method not allowed."}.get(exc.status_code, str(exc.detail))
        return JSONResponse(error_body(message, exc.status_code), status_code=exc.status_code)

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(f"Invalid request: {exc.errors()}", 400), status_code=400)
