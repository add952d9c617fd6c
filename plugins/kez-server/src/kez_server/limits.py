"""Slow and vanishing clients: header and body deadlines, a connection cap, quiet disconnects.

uvicorn has a keep-alive timeout but no deadline for reading a request's
headers or body and no cap of its own that answers in the API's shape, so
a few hundred clients sending a byte now and then would hold every file
descriptor and `/v1/healthz` would fail for everyone. Three parts:

- `protocol_class(...)`: uvicorn's HTTP protocol (httptools, else h11) with a
  **header deadline** (the whole request head must arrive within
  `header_timeout` seconds of the connection or, on a kept-alive connection,
  of the request's first byte; a client dribbling a byte a second is cut at
  the deadline: 408 `header_timeout` and close, or a silent close when it
  sent nothing at all), a **head size cap** (64 KiB: 431 `header_too_large`),
  JSON for uvicorn's 400 to bytes that are not HTTP, and a **connection
  cap** (a connection opened while `max_connections` are open gets 503
  `busy` with `Retry-After` at its first bytes and is closed; the slow ones
  free their places at their deadlines).
- `BodyDeadline`: ASGI middleware giving each request `body_timeout` seconds
  from its headers to the end of its body (408 `body_timeout`, connection
  closed); reads after the body (disconnect watchers) are not limited.
- `client_disconnected`: the exception handler for a client that went away
  mid-body. It is a normal event, logged at INFO, never a 500.

`uvicorn_options(settings)` gives the `uvicorn.Config` keywords for these,
used by `kez-server` and `kez_server.testing.running_server` alike.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import DEFAULT_MAX_CONNECTIONS, ServerSettings
from .errors import ApiError
from .privacy import redact_path, shown

log = logging.getLogger("kez_server")

MAX_HEAD = 64 * 1024  # bytes of a request line and headers (431 beyond)
FD_RESERVE = 64  # descriptors kept for the database pool, logs and the listening socket
WARN_EVERY = 10.0  # seconds between two "connection cap reached" warnings
_last_warning = [float("-inf")]


def _raw_answer(status: int, reason: str, body: dict[str, Any], headers: dict[str, str]) -> bytes:
    """A whole HTTP/1.1 response that closes the connection (written by the protocol itself)."""
    data = json.dumps(body).encode()
    lines = [f"HTTP/1.1 {status} {reason}", "content-type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += [f"content-length: {len(data)}", "connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + data


def protocol_class(header_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with the header deadline and the connection cap (0: off)."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol

    class LimitedProtocol(base):  # type: ignore[misc, valid-type]
        """`_timer` runs while a request head is awaited; `_got` counts its bytes."""

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._got = 0
            self._timer: asyncio.TimerHandle | None = None
            self._over_cap = bool(max_connections) and len(self.connections) > max_connections
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _awaiting_head(self) -> bool:
            """True between requests. An answer sent before its request's body was read
            (413 on Content-Length) completes the response while that body still
            arrives: those bytes are body, not the next head (they once tripped 431)."""
            cycle = self.cycle
            return cycle is None or (cycle.response_complete and not cycle.more_body)

        def _arm(self) -> None:
            if header_timeout and self._timer is None:
                self._timer = self.loop.call_later(header_timeout, self._head_too_slow)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._got = 0

        def data_received(self, data: bytes) -> None:
            if self._over_cap:
                self._refuse_over_cap()
                return
            awaiting = self._awaiting_head()
            if awaiting:
                self._arm()  # the first bytes of a request on a kept-alive connection
                self._got += len(data)
            super().data_received(data)
            if not awaiting or self.transport.is_closing():
                return
            if not self._awaiting_head():
                self._disarm()  # the head is complete: the app has the request
            elif self._got > MAX_HEAD:
                self._close_with(
                    431,
                    "Request Header Fields Too Large",
                    "header_too_large",
                    f"the request line and headers exceed {MAX_HEAD} bytes",
                )

        def send_400_response(self, msg: str) -> None:
            """uvicorn's answer to bytes that are not HTTP, in the API's JSON shape."""
            self._close_with(400, "Bad Request", "bad_request", f"not an HTTP/1.1 request: {msg}")

        def _close_with(self, status: int, reason: str, code: str, message: str) -> None:
            self._disarm()
            body = {"error": code, "message": message}
            self.transport.write(_raw_answer(status, reason, body, {}))
            self.transport.close()

        def _head_too_slow(self) -> None:
            self._timer = None
            if self.transport.is_closing() or not self._awaiting_head():
                return
            if not self._got:
                self.transport.close()  # connected and said nothing: nobody to answer
                return
            log.info(
                "client %s: no complete request head within %s s; closed",
                _peer(self.client),
                header_timeout,
            )
            self._close_with(
                408,
                "Request Timeout",
                "header_timeout",
                f"the request head did not arrive within {header_timeout:g} s",
            )

        def _refuse_over_cap(self) -> None:
            if self.transport.is_closing():
                return
            now = self.loop.time()
            if now - _last_warning[0] >= WARN_EVERY:  # one line now and then, not one per client
                _last_warning[0] = now
                log.warning(
                    "connection cap reached: %d connections are open (limit %d); "
                    "new ones get 503 busy",
                    len(self.connections) - 1,
                    max_connections,
                )
            self.transport.write(
                _raw_answer(
                    503,
                    "Service Unavailable",
                    {
                        "error": "busy",
                        "message": "the server has too many open connections; retry in a moment",
                        "limit": max_connections,
                    },
                    {"retry-after": "1"},
                )
            )
            self.transport.close()

    return LimitedProtocol


def _peer(client: tuple[str, int] | None) -> str:
    """The client as the log may name it: a per-process pseudonym at DEBUG, else nothing (spec §11)."""
    return shown(client[0], log) if client else "?"


class BodyDeadline:
    """Pure ASGI middleware: a request's body must arrive within `seconds` of its start."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.seconds:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        done = False

        async def limited() -> Message:
            nonlocal done
            if done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise ApiError(
                    408,
                    "body_timeout",
                    f"the request body did not arrive within {self.seconds:g} s",
                    headers={"connection": "close"},
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        await self.app(scope, limited, send)


async def client_disconnected(request: Request, _exc: Exception) -> Response:
    """A client closed its connection before sending its whole body: log it, answer nobody."""
    log.info(
        "client %s disconnected during %s %s; nothing stored",
        _peer(request.client and (request.client.host, request.client.port)),
        request.method,
        redact_path(request.url.path, debug=log.isEnabledFor(logging.DEBUG)),
    )
    return Response(status_code=400)  # not delivered: the connection is gone


def connection_cap(requested: int) -> int:
    """`requested`, lowered to what the open-file limit allows (0: just that limit).

    Beyond the process's open-file limit accept() fails and nobody gets an
    answer, so the cap stays FD_RESERVE below it.
    """
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):  # pragma: no cover - no such limit here
        return requested
    if soft == resource.RLIM_INFINITY:
        return requested
    allowed = max(1, soft - FD_RESERVE)
    if requested == 0 or requested > allowed:
        # a warning when the operator asked for more; the default fitting a small limit is normal
        explicit = requested not in (0, DEFAULT_MAX_CONNECTIONS)
        log.log(
            logging.WARNING if explicit else logging.INFO,
            "max connections lowered to %d: the open-file limit is %d (raise it with ulimit -n)",
            allowed,
            soft,
        )
        return allowed
    return requested


def uvicorn_options(settings: ServerSettings) -> dict[str, Any]:
    """`uvicorn.Config` keywords for the deadlines and the cap in `settings`."""
    return {
        "http": protocol_class(settings.header_timeout, connection_cap(settings.max_connections)),
    }


__all__ = [
    "BodyDeadline",
    "ClientDisconnect",
    "client_disconnected",
    "connection_cap",
    "protocol_class",
    "uvicorn_options",
]
