"""Typed API errors: every error response is `{"error": code, "message": …}` JSON.

Handlers raise `ApiError`; the exception handlers registered in `app.py`
turn it, Starlette's own 404/405 and anything unexpected into the same
shape. Client mistakes get a 4xx with a message that says what to fix;
a 500 means a bug in the server, never bad input.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered to the client: HTTP status, stable code, message, extra fields."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


# HTTP status → code for errors Starlette raises itself (unknown route, wrong method …)
HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}
