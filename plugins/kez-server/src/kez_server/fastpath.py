"""The inbox's two hottest requests, answered before Starlette's middleware and router.

`POST /v1/messages` and `GET /v1/inbox/{handle}?since=N[&limit=M]` are most
of a chat home's traffic. Through the full stack (ServerErrorMiddleware,
BodyDeadline, RateLimit, ExceptionMiddleware, the router's walk over every
route, a `Request`, its parsed query and headers, a `Response`) each paid
more in the framework than in its own work: issue 11 §7 wants the POST at
25 % and the GET at 40 % of a bare Starlette hello-world.

`InboxFastPath` answers exactly those requests in their plain form and
applies the same rules as the routed endpoints, through the same code
(`Inbox.take_message_token`, `Inbox.store_posted`, `Inbox.inbox_answer`,
`app.rate_refusal`, the app's error answers). Anything else (another
method, a query it does not recognise, no Content-Length, a media type
other than JSON, a body over the cap, a `root_path`) it leaves alone
before doing anything, and the routed endpoint decides, so every refusal
that is not on the hot path keeps its one implementation.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .errors import ApiError

if TYPE_CHECKING:
    from .inbox import Inbox
    from .ratelimit import TokenBuckets

_INBOX = "/v1/inbox/"
# "", "since=N" or "since=N&limit=M": what kez clients send; any other query takes the routed path
_QUERY = re.compile(rb"^(?:since=([0-9]{1,18})(?:&limit=([0-9]{1,18}))?)?\Z")
_JSON_HEADERS = [(b"content-type", b"application/json")]


def _media_type(value: bytes) -> str:
    return value.split(b";", 1)[0].strip().lower().decode("latin-1")


class InboxFastPath:
    """`await fast(scope, receive, send)`: True when it answered the request (see module text)."""

    def __init__(
        self,
        inbox: Inbox,
        *,
        writes: TokenBuckets,
        reads: TokenBuckets,
        body_timeout: float,
        handlers: Mapping[type, Callable[[Request, Exception], Awaitable[Response]]],
    ) -> None:
        self.inbox = inbox
        self.writes = writes
        self.reads = reads
        self.body_timeout = body_timeout
        self.handlers = handlers  # the app's own exception handlers (create_app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> bool:
        if scope.get("root_path"):
            return False
        method, path = scope["method"], scope["path"]
        if method == "GET" and path.startswith(_INBOX):
            handle = path[len(_INBOX) :]
            if not handle or "/" in handle:
                return False  # the live stream, or not an inbox path
            return await self._get(scope, receive, send, handle)
        if method == "POST" and path == "/v1/messages":
            return await self._post(scope, receive, send)
        return False

    # ------------------------------------------------------------------ GET

    async def _get(self, scope: Scope, receive: Receive, send: Send, handle: str) -> bool:
        query = _QUERY.match(scope["query_string"])
        if query is None:
            return False
        since = int(query[1]) if query[1] is not None else 0
        limit = int(query[2]) if query[2] is not None else None
        if limit is not None and limit < 1:
            return False  # the routed endpoint says what is wrong
        from .app import rate_refusal
        from .inbox import DEFAULT_LIMIT, MAX_LIMIT

        refusal = rate_refusal(scope, self.writes, self.reads)
        if refusal is not None:
            await refusal(scope, receive, send)
            return True
        header = None
        for name, value in scope["headers"]:
            if name == b"x-kez-auth":
                header = value.decode("latin-1")
                break
        limit = DEFAULT_LIMIT if limit is None else min(limit, MAX_LIMIT)
        try:
            body = await self.inbox.inbox_answer(handle, since, limit, header)
        except Exception as exc:  # noqa: BLE001 - answered as the app's handlers answer it
            await self._error(scope, receive, send, exc)
            return True
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"cache-control", b"no-store"),
                    (b"content-length", str(len(body)).encode()),
                    *_JSON_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return True

    # ----------------------------------------------------------------- POST

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> bool:
        from .inbox import MESSAGE_BODY_CAP

        length = kind = None
        for name, value in scope["headers"]:
            if name == b"content-length" and length is None:
                length = value
            elif name == b"content-type" and kind is None:
                kind = _media_type(value)
        if (
            length is None
            or not length.isdigit()
            or len(length) > 18
            or int(length) > MESSAGE_BODY_CAP
        ):
            return False
        if kind is not None and kind != "application/json" and not kind.endswith("+json"):
            return False
        client = scope.get("client")
        try:
            self.inbox.take_message_token(client[0] if client else "?")
            body = await self._body(scope, receive, MESSAGE_BODY_CAP)
            seq = await self.inbox.store_posted(body)
        except Exception as exc:  # noqa: BLE001 - answered as the app's handlers answer it
            await self._error(scope, receive, send, exc)
            return True
        answer = b'{"seq":%d}' % seq
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [(b"content-length", str(len(answer)).encode()), *_JSON_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": answer})
        return True

    async def _body(self, scope: Scope, receive: Receive, cap: int) -> bytes:
        """The whole body within `body_timeout` seconds (limits.BodyDeadline's rule), read
        and capped by the routed endpoints' own `read_body`."""
        from .app import read_body

        request = Request(scope, receive)
        if not self.body_timeout:
            return await read_body(request, cap)
        try:
            async with asyncio.timeout(self.body_timeout):
                return await read_body(request, cap)
        except TimeoutError:
            raise ApiError(
                408,
                "body_timeout",
                f"the request body did not arrive within {self.body_timeout:g} s",
                headers={"connection": "close"},
            ) from None

    # --------------------------------------------------------------- errors

    async def _error(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
        """The answer the app gives to `exc`: its handler, looked up as Starlette does (by the
        exception's class, then its bases)."""
        handler = next(self.handlers[cls] for cls in type(exc).__mro__ if cls in self.handlers)
        response = await handler(Request(scope, receive), exc)
        await response(scope, receive, send)
