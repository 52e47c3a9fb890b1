"""Errors in OpenAI's shape, so that OpenAI clients raise their usual exceptions.

The body is ``{"error": {"message", "type", "param", "code"}}`` and the status code is the
one OpenAI uses for the same failure: the official client maps 400 to BadRequestError,
401 to AuthenticationError, 404 to NotFoundError and 429 to RateLimitError (which it
retries, honouring Retry-After).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

TYPES = {400: "invalid_request_error", 401: "authentication_error",
         404: "invalid_request_error", 429: "rate_limit_error", 500: "server_error"}


class ApiError(Exception):
    """A request the API refuses: its status, message and the parameter at fault."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.status, self.param, self.code)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(message: str, status: int, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    kind = TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param, code)
