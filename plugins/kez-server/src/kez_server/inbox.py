"""The HTTP inbox: opaque envelopes held for a handle until its owner fetches them.

    POST   /v1/messages                      {"to": <handle>, "envelope": "kez:e1:…"[, "route": <routing id>]}
    GET    /v1/inbox/{handle}?since=N&limit=M   X-KEZ-Auth over GET, path, "since=N"
    DELETE /v1/inbox/{handle}?through=N         X-KEZ-Auth over DELETE, path, "through=N"
    GET    /v1/inbox/{handle}/live?since=N      Server-Sent Events; X-KEZ-Auth over its own path
    GET    /v1/by-primary/{key id}              the handle of a primary (or identity) key

The server cannot read an envelope; it checks that it is one (the `kez:e1:`
text of a sealed, padded message: spec section 12) and keeps it for 7 days
or until the owner deletes it. Only the handle's current keys (the primary,
or a current device of the chain stored here) read or delete. Reading never
deletes, so a reader that disconnects loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from kez_core.codec import parse_json
from kez_core.errors import DecodeError, KezError
from kez_core.messaging.envelope import check_envelope_text
from kez_core.messaging.inbox_auth import HEADER
from kez_core.timefmt import format_time
from datetime import UTC, datetime
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .app import _JSON_TYPES, KezServer, _require_type, read_body
from .chains import is_identity_id
from .errors import ApiError
from .inbox_writer import InboxWriter
from .live import InboxEvents, PgListener
from .privacy import pseudonym
from .ratelimit import TokenBuckets
from .request_auth import authorize, authorize_header

log = logging.getLogger("kez_server.inbox")

MESSAGE_BODY_CAP = 256 * 1024  # one POST /v1/messages body
RETENTION = 7 * 24 * 3600  # stored envelopes older than this are purged
PURGE_EVERY = 60.0  # seconds between purges (run by the writes themselves)
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
KNOWN_HANDLES = 100_000  # handles remembered as registered by POST /v1/messages
KEEPALIVE = 15.0  # seconds between SSE comments (and re-reads) on an idle live stream
_CURSOR = re.compile(r"^[0-9]{1,18}\Z")
_ROUTE = re.compile(r"^[0-9a-f]{64}\Z")


def _cursor(request: Request, name: str, default: int | None = 0) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if default is None:
            raise ApiError(
                400, "bad_query", f"{name} is required: a non-negative integer", parameter=name
            )
        return default
    if not _CURSOR.match(raw):
        raise ApiError(400, "bad_query", f"{name} must be a non-negative integer", parameter=name)
    return int(raw)


def _limit(request: Request) -> int:
    limit = _cursor(request, "limit", DEFAULT_LIMIT)
    if limit < 1:
        raise ApiError(400, "bad_query", "limit must be at least 1", parameter="limit")
    return min(limit, MAX_LIMIT)


# Bytes json.dumps writes as they are in both modes: printable ASCII but " and \\
# (ensure_ascii=True escapes 0x7f; False does not: a string with one takes json.dumps)
_AS_IS = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')


def _json_string(value: str, ascii_only: bool = False) -> str:
    """`value` as a JSON string, exactly as json.dumps(ensure_ascii=ascii_only) writes it.

    Stored envelopes are base64url text (checked when POSTed), so the common
    case is a copy between quotes. The check (isascii is a flag; translate
    with a delete table is a C loop) costs ~1.7 µs for a 1 KiB envelope,
    json.dumps ~6 µs: a GET of a few envelopes spends a large share there.
    """
    if value.isascii() and not value.encode("ascii").translate(None, _AS_IS):
        return '"' + value + '"'
    return json.dumps(value, ensure_ascii=ascii_only)


def _message_json(row: tuple[int, str, str, str | None], ascii_only: bool = False) -> str:
    """`_message(row)` as compact JSON text: what json.dumps(…, separators=(",", ":"),
    ensure_ascii=ascii_only) writes (JSONResponse: ascii_only False; the live stream: True)."""
    seq, envelope, received_at, route = row
    text = (
        f'{{"seq":{int(seq)},"envelope":{_json_string(envelope, ascii_only)},'
        f'"received_at":{_json_string(received_at, ascii_only)}'
    )
    if route is not None:
        text += f',"route":{_json_string(route, ascii_only)}'
    return text + "}"


def _messages_json(rows: list[tuple[int, str, str, str | None]]) -> str:
    """`",".join(_message_json(r) for r in rows)`, with one scan for all their strings.

    Stored envelopes, times and routes need no escaping (checked when they
    were POSTed), so the usual answer is copies between quotes: one
    isascii/translate pass over all of them instead of one per string
    (each call's overhead was most of the cost for 1 KiB envelopes).
    """
    values: list[str] = []
    for _seq, envelope, received_at, route in rows:
        values.append(envelope)
        values.append(received_at)
        if route is not None:
            values.append(route)
    text = "".join(values)
    if not (text.isascii() and not text.encode("ascii").translate(None, _AS_IS)):
        return ",".join(_message_json(r) for r in rows)
    return ",".join(
        f'{{"seq":{int(seq)},"envelope":"{envelope}","received_at":"{received_at}"'
        + ("}" if route is None else f',"route":"{route}"}}')
        for seq, envelope, received_at, route in rows
    )


def _message(row: tuple[int, str, str, str | None]) -> dict[str, Any]:
    seq, envelope, received_at, route = row
    out: dict[str, Any] = {"seq": seq, "envelope": envelope, "received_at": received_at}
    if route is not None:
        out["route"] = route
    return out


class Inbox:
    """The inbox endpoints over a `KezServer` (its store, chains and settings)."""

    def __init__(self, server: KezServer, *, clock: Callable[[], float] = time.time) -> None:
        self.server = server
        self.store = server.store
        self.clock = clock
        self.events = InboxEvents()
        self.writer = InboxWriter(self.store)  # POSTs stored together commit together
        settings = server.settings
        self.buckets = TokenBuckets(settings.message_burst, settings.message_rate)
        self.keepalive = KEEPALIVE
        self._last_purge = float("-inf")
        self._registered: dict[str, None] = {}  # handles seen registered (insertion order: FIFO)
        self._stamp: tuple[int, str] = (-1, "")  # (unix second, its received_at text)
        self._listener: PgListener | None = None

    def routes(self) -> list[Route]:
        return [
            Route("/v1/messages", self.post_message, methods=["POST"]),
            Route("/v1/inbox/{handle}", self.get_inbox, methods=["GET"]),
            Route("/v1/inbox/{handle}", self.delete_inbox, methods=["DELETE"]),
            Route("/v1/inbox/{handle}/live", self.live, methods=["GET"]),
            Route("/v1/by-primary/{key}", self.by_primary, methods=["GET"]),
        ]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Lifespan: the LISTEN connection when the database is PostgreSQL (several nodes)."""
        if self.store.kind == "postgresql":
            import sqlalchemy as sa

            url = sa.engine.make_url(self.store.url).set(drivername="postgresql")
            self._listener = PgListener(url.render_as_string(hide_password=False), self.events)
            await self._listener.start()
        try:
            yield
        finally:
            if self._listener is not None:
                await self._listener.stop()

    # ------------------------------------------------------------ helpers

    def _newer_than(self) -> int:
        return int(self.clock()) - RETENTION

    async def _purge(self) -> None:
        now = self.clock()
        if now - self._last_purge < PURGE_EVERY:
            return
        self._last_purge = now
        gone = await run_in_threadpool(self.store.purge_messages, int(now) - RETENTION)
        if gone:
            log.info("purged %d envelopes older than 7 days", gone)

    async def _authorize(
        self, request: Request, row: dict[str, Any], method: str, path: str, bound: str
    ) -> None:
        await authorize(
            self.server, request, row, method=method, path=path, bound=bound, now=self.clock()
        )

    # ---------------------------------------------------------- endpoints

    def take_message_token(self, client: str) -> None:
        """ApiError 429 unless `client` may post one more message (60/min by default)."""
        wait = self.buckets.take(client)
        if wait is not None:
            seconds = int(wait)
            raise ApiError(
                429,
                "rate_limited",
                f"too many messages from your address; retry in {seconds} s",
                headers={"retry-after": str(seconds)},
                retry_after=seconds,
            )

    async def post_message(self, request: Request) -> Response:
        self.take_message_token(request.client.host if request.client else "?")
        _require_type(request, _JSON_TYPES, "JSON")
        body = await read_body(request, MESSAGE_BODY_CAP)
        seq = await self.store_posted(body)
        return JSONResponse({"seq": seq}, 201)

    async def store_posted(self, body: bytes) -> int:
        """Check a POST /v1/messages body, store its envelope: its seq (ApiError otherwise).

        Shared by the routed endpoint and the fast path (fastpath.py), which
        differ only in how they get the body.
        """
        try:
            data = parse_json(body, max_bytes=MESSAGE_BODY_CAP)
        except DecodeError as exc:
            raise ApiError(400, "bad_json", f"the body is not strict JSON: {exc.message}") from exc
        if not isinstance(data, dict):
            raise ApiError(
                400, "bad_body", 'the body must be a JSON object {"to": …, "envelope": …}'
            )
        to, envelope, route = data.get("to"), data.get("envelope"), data.get("route")
        if not isinstance(to, str):
            raise ApiError(400, "bad_body", "field 'to' must be the recipient's handle (a string)")
        if not isinstance(envelope, str):
            raise ApiError(400, "bad_body", "field 'envelope' must be the envelope text (kez:e1:…)")
        if route is not None and (not isinstance(route, str) or not _ROUTE.match(route)):
            raise ApiError(
                400, "bad_body", "field 'route', when given, is a routing id: 64 lowercase hex"
            )
        try:
            check_envelope_text(envelope)  # envelope_bytes' verdict, without decoding
        except KezError as exc:
            raise ApiError(400, "bad_envelope", f"not an envelope: {exc.message}") from exc
        if to not in self._registered:
            # a registration is never deleted (only moved to a new primary), so a handle
            # seen registered stays so: later POSTs to it skip the lookup
            await self.server.registered(to)
            if len(self._registered) >= KNOWN_HANDLES:
                self._registered.pop(next(iter(self._registered)))
            self._registered[to] = None
        now = self.clock()
        second = int(now)
        if second != self._stamp[0]:
            self._stamp = (second, format_time(datetime.fromtimestamp(second, UTC)))
        seq = await self.writer.store_message(to, route, envelope, self._stamp[1], second)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("stored seq %d for %s", seq, pseudonym(to))
        self.events.stored(to, seq)
        await self._purge()
        return seq

    async def get_inbox(self, request: Request) -> Response:
        handle = request.path_params["handle"]
        since, limit = _cursor(request, "since"), _limit(request)
        body = await self.inbox_answer(handle, since, limit, request.headers.get(HEADER))
        return Response(body, media_type="application/json", headers={"cache-control": "no-store"})

    async def inbox_answer(self, handle: str, since: int, limit: int, header: str | None) -> bytes:
        """The JSON body of GET /v1/inbox/{handle} (ApiError 404/401 otherwise); `header` is
        the X-KEZ-Auth value. Shared by the routed endpoint and the fast path."""
        row = await self.server.registered_with_head(handle)
        await authorize_header(
            self.server,
            header,
            row,
            method="GET",
            path=f"/v1/inbox/{handle}",
            bound=f"since={since}",
            now=self.clock(),
        )
        rows = await self.server.read(self.store.inbox, handle, since, limit, self._newer_than())
        # {"messages": [...], "next": n}, written as JSONResponse would (see _json_string)
        body = (
            '{"messages":['
            + _messages_json(rows)
            + f'],"next":{int(rows[-1][0]) if rows else since}}}'
        )
        return body.encode("utf-8")

    async def delete_inbox(self, request: Request) -> Response:
        handle = request.path_params["handle"]
        through = _cursor(request, "through", None)
        row = await self.server.registered_with_head(handle)
        await self._authorize(request, row, "DELETE", f"/v1/inbox/{handle}", f"through={through}")
        deleted = await run_in_threadpool(self.store.drop_messages, handle, through)
        return JSONResponse({"deleted": deleted, "through": through})

    async def live(self, request: Request) -> Response:
        handle = request.path_params["handle"]
        since = _cursor(request, "since")
        row = await self.server.registered_with_head(handle)
        await self._authorize(request, row, "GET", f"/v1/inbox/{handle}/live", f"since={since}")
        return StreamingResponse(
            self._stream(handle, since),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def _stream(self, handle: str, since: int) -> AsyncIterator[bytes]:
        """Catch up from `since`, then each new envelope as it is stored (SSE `id` = seq)."""
        cursor = since
        yield b": live\n\n"
        while True:
            with self.events.waiter(handle) as woken:
                # registered before reading: a message stored during the read still wakes us
                rows = await self.server.read(
                    self.store.inbox, handle, cursor, MAX_LIMIT, self._newer_than()
                )
                for r in rows:
                    cursor = r[0]
                    data = _message_json(r, ascii_only=True)
                    yield f"id: {cursor}\nevent: message\ndata: {data}\n\n".encode()
                if len(rows) == MAX_LIMIT:
                    continue
                try:
                    await asyncio.wait_for(woken.wait(), self.keepalive)
                except TimeoutError:
                    yield b": keepalive\n\n"

    async def by_primary(self, request: Request) -> Response:
        key = request.path_params["key"]
        if len(key) > 200 or not is_identity_id(key, self.server.registry):
            raise ApiError(
                400,
                "bad_key",
                f"{key[:80]!r} is not a key id in normal form",
                hint="e.g. /v1/by-primary/ed25519:<64 lowercase hex>",
            )
        row = await self.server.read(self.store.handle_by_key, key)
        if row is None:
            raise ApiError(
                404, "not_found", f"no handle on {self.server.settings.server_name} has this key"
            )
        return JSONResponse(self.server.handle_body(request, row))
