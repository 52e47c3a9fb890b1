"""A real OTLP/HTTP trace receiver on 127.0.0.1 for tests: what a collector (Jaeger,
Langfuse, Phoenix) gets from Strata, decoded with opentelemetry-proto.

``with OtlpReceiver() as receiver:`` serves ``POST /v1/traces`` (protobuf, gzip or not) on
a free port; ``receiver.endpoint`` is the value for ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``receiver.spans()`` every span received so far (name, ids, attributes as Python values),
``receiver.bodies`` the raw requests (a text that must not be sent can be searched there).
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    status: int = 0  # 0 unset, 1 ok, 2 error
    status_message: str = ""
    service: str = ""


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def decode(body: bytes) -> list[Span]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(Span(
                    name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                    parent_id=span.parent_span_id.hex(),
                    attributes={a.key: _value(a.value) for a in span.attributes},
                    status=span.status.code, status_message=span.status.message,
                    service=str(resource.get("service.name", ""))))
    return spans


class OtlpReceiver:
    """A ThreadingHTTPServer that keeps every trace export it is sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with receiver._lock:
                    receiver.bodies.append(body)
                    receiver.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def spans(self) -> list[Span]:
        with self._lock:
            bodies = list(self.bodies)
        return [span for body in bodies for span in decode(body)]

    def wait_for(self, name: str, count: int = 1, timeout_s: float = 10.0) -> list[Span]:
        """Every span received, once ``count`` spans called ``name`` have arrived."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans()
            if sum(s.name == name for s in spans) >= count or time.monotonic() > deadline:
                return spans
            time.sleep(0.05)
