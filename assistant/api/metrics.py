"""``GET /metrics``: the answers' Prometheus metrics on the app's port, beside ``/v1``.

Admitted as ``/v1`` is (auth.Gate): with ``ASSISTANT_API_KEYS`` set a scrape needs
``Authorization: Bearer KEY`` (Prometheus: ``authorization: {credentials: KEY}``), without
keys the web app's logins, without either it is open. The metrics hold no text, only
counts, times and costs (assistant/ledger/prometheus.py lists them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from assistant.api.auth import Gate
from assistant.api.errors import ApiError

if TYPE_CHECKING:
    from assistant.ledger.telemetry import Telemetry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus' text format


class HasTelemetry(Protocol):
    @property
    def telemetry(self) -> Telemetry: ...


def metrics_endpoint(services: HasTelemetry, gate: Gate
                     ) -> Callable[[Request], Awaitable[Response]]:
    """The route's handler over ``services.telemetry`` (built on the first scrape; cheap)."""

    async def metrics(request: Request) -> Response:
        try:
            gate.admit(request.headers.get("authorization"))
        except ApiError as exc:  # this route is outside /v1 and its error handlers
            return exc.response()
        body = await run_in_threadpool(lambda: services.telemetry.exposition())
        return Response(body, media_type=CONTENT_TYPE)

    return metrics
