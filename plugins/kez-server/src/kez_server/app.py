"""The ASGI application: sigchain store, handle registry, WebFinger, health.

`create_app(settings)` migrates the database (alembic, `upgrade head`) and
returns a Starlette app; `create_app_from_env()` does the same from the
`KEZ_SERVER_*` variables, for `uvicorn --factory kez_server.app:create_app_from_env`
or gunicorn with uvicorn workers. Database calls and signature checks run
in the thread pool, so the event loop only parses HTTP.

Endpoints (docs/spec.md, "Server API"; README of kez-server):

    GET  /v1/healthz
    GET  /v1/u/{handle}
    POST /v1/register
    GET  /.well-known/webfinger?resource=acct:{handle}@{server}
    GET  /v1/sigchains/{alg}/{hex}[?after=SEQNO]
    POST /v1/sigchains/{alg}/{hex}
    GET  /v1/sigchains/{alg}/{hex}/forks
    POST /v1/messages, GET|DELETE /v1/inbox/{handle}, GET /v1/inbox/{handle}/live,
    GET  /v1/by-primary/{key id}                          (inbox.py)
    GET  /v1/push/vapid-public-key            (push_api.py)
    POST /v1/push/subscribe/{handle}
    POST /v1/push/unsubscribe/{handle}
    GET  /v1/push/subscriptions/{handle}

`app.state.kez.push.message_stored(handle)` sends the Web Pushes for a
newly stored message (push.py), without waiting for them.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from kez_core.codec import parse_json
from kez_core.errors import DecodeError
from kez_core.messaging.inbox_auth import VerifiedSignatures
from kez_core.registry import default_registry
from kez_core.timefmt import format_time, now
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from . import __version__
from .chains import PAGE, ChainService, check_identity
from .config import REGISTER_BODY_CAP, ServerSettings
from .db import Store
from .errors import HTTP_CODES, ApiError
from .push import PushService
from .handles import HANDLE_RE, Registration, check_registration, sigchain_path
from .limits import BodyDeadline, ClientDisconnect, client_disconnected
from .nostr_listen import NostrListener
from .quotas import ClientQuota
from .push_api import build_push
from .ratelimit import TokenBuckets

log = logging.getLogger("kez_server")

NDJSON = "application/x-ndjson"
JRD = "application/jrd+json"
NS = "https://kez.lat/ns/"
_CHAIN_TYPES = {
    NDJSON,
    "application/jsonl",
    "application/json-lines",
    "application/json",
    "text/plain",
}
_JSON_TYPES = {"application/json"}
_AFTER = re.compile(r"^[0-9]{1,18}\Z")
_NO_LIMIT_PATHS = ("/v1/healthz", "/v1/messages")  # messages: their own 60/min (inbox.py)


# ------------------------------------------------------------------ helpers


def _media_type(request: Request) -> str | None:
    value = request.headers.get("content-type")
    if value is None:
        return None
    return value.split(";", 1)[0].strip().lower()


def _require_type(request: Request, allowed: set[str], what: str) -> None:
    kind = _media_type(request)
    if kind is None or kind in allowed or (what == "JSON" and kind.endswith("+json")):
        return
    raise ApiError(
        415,
        "unsupported_media_type",
        f"content-type {kind[:80]!r} is not accepted here; send {what}",
        accepted=sorted(allowed),
    )


async def read_body(request: Request, cap: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `cap` bytes."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit() or len(length) > 18:
            raise ApiError(400, "bad_request", "content-length is not a number")
        if int(length) > cap:
            raise ApiError(
                413, "too_large", f"the body is {length} bytes; the limit here is {cap}", limit=cap
            )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise ApiError(
                413, "too_large", f"the body exceeds the limit of {cap} bytes", limit=cap
            )
    return bytes(body)


def _after(request: Request) -> int:
    raw = request.query_params.get("after")
    if raw is None or raw == "":
        return 0
    if not _AFTER.match(raw):
        raise ApiError(
            400, "bad_query", "after must be a seqno: a non-negative integer", parameter="after"
        )
    return int(raw)


def rate_refusal(scope: Scope, writes: TokenBuckets, reads: TokenBuckets) -> Response | None:
    """The 429 answer when the client's bucket for this request is empty, else None (a token
    is taken). Paths in `_NO_LIMIT_PATHS` are not limited here."""
    if scope["path"] in _NO_LIMIT_PATHS:
        return None
    buckets = reads if scope["method"] in ("GET", "HEAD", "OPTIONS") else writes
    if not buckets.enabled:
        return None
    client = scope.get("client")
    wait = buckets.take(client[0] if client else "?")
    if wait is None:
        return None
    seconds = int(wait)
    kind = "reads" if buckets is reads else "writes"
    return JSONResponse(
        {
            "error": "rate_limited",
            "message": f"too many {kind} from your address; retry in {seconds} s",
            "retry_after": seconds,
        },
        429,
        headers={"retry-after": str(seconds)},
    )


class RateLimit:
    """Pure ASGI middleware: per-client token buckets for writes (POST…) and reads (GET, HEAD)."""

    def __init__(self, app: ASGIApp, writes: TokenBuckets, reads: TokenBuckets) -> None:
        self.app = app
        self.writes = writes
        self.reads = reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            response = rate_refusal(scope, self.writes, self.reads)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class KezApp(Starlette):
    """Starlette, with a first look for the hottest requests (`fastpath.InboxFastPath`).

    `fast(scope, receive, send)` answers a request and returns True, or returns
    False having done nothing, and the request goes through the middleware
    stack and the router as usual.
    """

    fast: Callable[[Scope, Receive, Send], Awaitable[bool]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast
        if fast is not None and scope["type"] == "http" and await fast(scope, receive, send):
            return
        await super().__call__(scope, receive, send)


# ---------------------------------------------------------------- the app


class KezServer:
    """State shared by the endpoints (one per app)."""

    def __init__(self, settings: ServerSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.registry = default_registry()
        self.registry.key_algorithms()  # load plugins now, not in racing request threads
        self.chains = ChainService(
            store,
            registry=self.registry,
            max_links=settings.identity_max_links,
            max_bytes=settings.identity_max_bytes,
            client_quota=ClientQuota(
                settings.client_bytes_per_hour, settings.client_links_per_hour
            ),
        )
        # X-KEZ-Auth signatures that held (a pure verdict: clock and keys are checked anew)
        self.verified = VerifiedSignatures()
        self.push: PushService | None = None  # set by create_app
        self.nostr: NostrListener | None = None  # set by create_app with --nostr-relay

    async def read(self, fn: Any, *args: Any) -> Any:
        """Run a database read: inline for SQLite, in the thread pool for PostgreSQL.

        A SQLite read is a local call of tens of microseconds (WAL: readers
        never wait for the writer); handing it to a thread costs more than
        the query. A PostgreSQL read waits on the network, so it must not
        hold the event loop.
        """
        if self.store.inline_reads:
            return fn(*args)
        return await run_in_threadpool(fn, *args)

    def base_url(self, request: Request) -> str:
        return self.settings.public_url or str(request.base_url).rstrip("/")

    @property
    def url_headers(self) -> dict[str, str]:
        """Headers of an answer holding `base_url`: without a public URL it depends on Host."""
        return {} if self.settings.public_url else {"vary": "Host"}

    def handle_body(self, request: Request, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "handle": row["handle"],
            "fqhn": f"{row['handle']}@{self.settings.server_name}",
            "primary": row["primary_key"],
            "identity": row["identity"],
            "sigchain_url": self.base_url(request) + sigchain_path(row["identity"]),
            "registered_at": row["registered_at"],
        }

    # ---------------------------------------------------------- endpoints

    async def healthz(self, request: Request) -> Response:
        body = {"status": "ok", "server": self.settings.server_name, "version": __version__}
        try:
            await run_in_threadpool(self.store.ping)
        except Exception as exc:  # noqa: BLE001 - any database failure is "unavailable"
            log.warning("health check: database unreachable: %s", exc)
            return JSONResponse(
                {
                    "error": "db_unavailable",
                    "message": "the database does not answer",
                    **body,
                    "status": "error",
                    "db": "unreachable",
                },
                503,
            )
        return JSONResponse({**body, "db": "ok"})

    async def registered(self, handle: str) -> dict[str, Any]:
        """The stored row of `handle`; ApiError 404 when it is not registered (or not a handle)."""
        row = await self.read(self.store.lookup, handle) if HANDLE_RE.match(handle) else None
        if row is None:
            raise ApiError(
                404,
                "not_found",
                f"no handle {handle[:40]!r} is registered on {self.settings.server_name}",
            )
        return row

    async def registered_with_head(self, handle: str) -> dict[str, Any]:
        """`registered(handle)` plus the chain's head id (`Store.lookup_with_head`), for
        `request_auth.authorize`; one read."""
        row = (
            await self.read(self.store.lookup_with_head, handle)
            if HANDLE_RE.match(handle)
            else None
        )
        if row is None:
            raise ApiError(
                404,
                "not_found",
                f"no handle {handle[:40]!r} is registered on {self.settings.server_name}",
            )
        return row

    async def lookup(self, request: Request) -> Response:
        handle = request.path_params["handle"]
        row = await self.registered(handle)
        return JSONResponse(self.handle_body(request, row), headers=self.url_headers)

    async def register(self, request: Request) -> Response:
        _require_type(request, _JSON_TYPES, "JSON")
        body = await read_body(request, REGISTER_BODY_CAP)
        row = await run_in_threadpool(self._register, body)
        if self.nostr is not None:
            self.nostr.changed()  # its chain's inbox keys may now be watched
        return JSONResponse(
            self.handle_body(request, row),
            200 if row["moved"] else 201,
            headers={"location": f"/v1/u/{row['handle']}", **self.url_headers},
        )

    def _register(self, body: bytes) -> dict[str, Any]:
        try:
            data = parse_json(body)
        except DecodeError as exc:
            raise ApiError(400, "bad_json", f"the body is not strict JSON: {exc.message}") from exc
        clock = now()
        reg = check_registration(
            data,
            server_name=self.settings.server_name,
            reserved=self.settings.reserved,
            clock=clock,
            registry=self.registry,
        )
        registered_at = format_time(clock)
        if reg.identity != reg.primary:
            self._require_current_primary(reg)
        refused = self.store.register(
            reg.handle, reg.primary, reg.envelope_id, reg.envelope, registered_at, reg.identity
        )
        moved = False
        if refused == "handle_taken":
            row = self.store.lookup(reg.handle)
            if (
                row is not None
                and row["identity"] == reg.identity
                and row["primary_key"] != reg.primary
            ):
                # The same identity with a new primary: a rotation. The stored chain decides.
                self._require_current_primary(reg)
                refused = self.store.move_handle(
                    reg.handle,
                    row["primary_key"],
                    reg.primary,
                    reg.identity,
                    reg.envelope_id,
                    reg.envelope,
                    registered_at,
                )
                if refused == "changed":
                    raise ApiError(
                        409,
                        "busy",
                        f"handle {reg.handle!r} changed while moving it; retry",
                        headers={"retry-after": "1"},
                    )
                moved = refused is None
        if refused == "replay":
            raise ApiError(
                409,
                "replay",
                "this registration was accepted before; a signed registration is used once",
            )
        if refused == "handle_taken":
            raise ApiError(
                409,
                "handle_taken",
                f"handle {reg.handle!r} is taken on {self.settings.server_name}",
            )
        if refused == "primary_taken":
            other = self.store.handle_of(reg.primary)
            raise ApiError(
                409,
                "primary_taken",
                f"{reg.primary[:80]} already has a handle here" + (f" ({other})" if other else ""),
            )
        return {
            "handle": reg.handle,
            "primary_key": reg.primary,
            "identity": reg.identity,
            "registered_at": registered_at,
            "moved": moved,
        }

    def _require_current_primary(self, reg: Registration) -> None:
        """A primary that is not the identity id must be the current primary of the chain stored here."""
        current = self.chains.current_primary(reg.identity)
        if current is None:
            raise ApiError(
                422,
                "unknown_identity",
                f"this server has no chain of {reg.identity}, so it cannot tell that "
                f"{reg.primary[:80]} is its primary",
                hint="push the chain first (kez sigchain publish --server …), then register",
            )
        if current != reg.primary:
            raise ApiError(
                422,
                "not_current_primary",
                f"the chain of {reg.identity} stored here has {current} as its primary, "
                f"not {reg.primary[:80]}",
                hint="push the newest copy of the chain (kez sigchain publish --server …), then register",
            )

    async def webfinger(self, request: Request) -> Response:
        resource = request.query_params.get("resource")
        if not resource:
            raise ApiError(
                400,
                "bad_query",
                "the resource parameter is required, e.g. acct:alice@" + self.settings.server_name,
                parameter="resource",
            )
        if not resource.startswith("acct:"):
            raise ApiError(404, "not_found", "this server answers only acct: resources")
        handle, at, host = resource[5:].rpartition("@")
        if not at or host.lower() != self.settings.server_name:
            raise ApiError(
                404, "not_found", f"this server answers for @{self.settings.server_name} only"
            )
        row = await self.registered(handle)
        info = self.handle_body(request, row)
        links = [{"rel": NS + "sigchain", "type": NDJSON, "href": info["sigchain_url"]}]
        rels = request.query_params.getlist("rel")
        if rels:
            links = [link for link in links if link["rel"] in rels]
        jrd = {
            "subject": f"acct:{info['fqhn']}",
            "aliases": [self.base_url(request) + f"/v1/u/{info['handle']}"],
            "properties": {NS + "primary": info["primary"]},
            "links": links,
        }
        return JSONResponse(
            jrd, media_type=JRD, headers={"access-control-allow-origin": "*", **self.url_headers}
        )

    async def chain(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.post_chain(request)
        return await self.get_chain(request)

    async def get_chain(self, request: Request) -> Response:
        identity = check_identity(
            request.path_params["alg"], request.path_params["hex"], self.registry
        )
        after = _after(request)
        rows = await self.read(self.store.chain_lines, identity, after, PAGE)
        if not rows:
            if after == 0 or await self.read(self.store.head, identity) is None:
                raise ApiError(404, "unknown_identity", f"this server has no chain of {identity}")
            return Response(b"", media_type=NDJSON)
        first = b"".join(line + b"\n" for _seqno, line in rows)
        if len(rows) < PAGE:
            return Response(first, media_type=NDJSON)

        async def pages() -> AsyncIterator[bytes]:
            yield first
            last = rows[-1][0]
            while True:
                more = await self.read(self.store.chain_lines, identity, last, PAGE)
                if not more:
                    return
                yield b"".join(line + b"\n" for _seqno, line in more)
                last = more[-1][0]

        return StreamingResponse(pages(), media_type=NDJSON)

    async def post_chain(self, request: Request) -> Response:
        identity = check_identity(
            request.path_params["alg"], request.path_params["hex"], self.registry
        )
        _require_type(request, _CHAIN_TYPES, f"JSON Lines ({NDJSON})")
        body = await read_body(request, self.settings.max_chain_body)
        client = request.client.host if request.client else "?"
        result = await run_in_threadpool(self.chains.append, identity, body, client)
        if self.nostr is not None:
            self.nostr.changed()  # an add_inbox may have come
        return JSONResponse(result.to_json())

    async def get_forks(self, request: Request) -> Response:
        identity = check_identity(
            request.path_params["alg"], request.path_params["hex"], self.registry
        )
        if await self.read(self.store.head, identity) is None:
            raise ApiError(404, "unknown_identity", f"this server has no chain of {identity}")
        forks = await run_in_threadpool(self.chains.forks, identity)
        return JSONResponse({"identity": identity, "forks": forks})


# ------------------------------------------------------- error handlers


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code
    if exc.status_code == 404:
        message = "no such endpoint; see GET /v1/healthz and the server API in docs/spec.md"
    elif exc.status_code == 405:
        allow = next((v for k, v in (exc.headers or {}).items() if k.lower() == "allow"), "?")
        message = f"method {request.method} is not allowed here (allowed: {allow})"
    return JSONResponse({"error": code, "message": message}, exc.status_code, headers=exc.headers)


async def _db_unavailable(_request: Request, exc: Exception) -> Response:
    log.warning("database unavailable: %s", exc)
    return JSONResponse(
        {"error": "unavailable", "message": "the database is unavailable or busy; retry later"},
        503,
        headers={"retry-after": "5"},
    )


def _database_errors() -> tuple[type[Exception], ...]:
    """Errors that mean "the database cannot answer now" (down, locked, pool exhausted)."""
    import sqlite3

    import sqlalchemy.exc

    errors: list[type[Exception]] = [
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        sqlalchemy.exc.TimeoutError,
        sqlite3.OperationalError,
    ]
    try:
        import psycopg

        errors += [psycopg.OperationalError, psycopg.InterfaceError]
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    return tuple(errors)


async def _internal_error(_request: Request, exc: Exception) -> Response:
    log.error("internal error: %r", exc)
    return JSONResponse({"error": "internal", "message": "internal server error"}, 500)


def freeze_startup_objects() -> None:
    """Move every object alive now out of the garbage collector's reach (`gc.freeze`).

    A started server holds ~100,000 long-lived objects (SQLAlchemy, alembic,
    uvicorn, the plugins); CPython's full collection walks all of them, and
    under POST load one ran about once a second and stopped the event loop
    for 60-200 ms on this machine: the inbox POST's p99. Frozen, a full
    collection looks only at what was allocated since (~2 ms). Frozen
    objects are never freed, which is what a server's startup objects are
    anyway. For a process that is the server (`kez-server`, the uvicorn
    factory), not for one that embeds the app (tests).
    """
    gc.collect()
    gc.freeze()


def create_app(
    settings: ServerSettings,
    *,
    store: Store | None = None,
    clock: Callable[[], float] | None = None,
    freeze_gc: bool = False,
) -> Starlette:
    """The ASGI app over `settings.db` (schema migrated to the newest revision first).

    `clock` (unix seconds) is the inbox's clock: auth skew, `received_at`, the 7-day purge.
    `freeze_gc`: call `freeze_startup_objects` once the app has started (the lifespan).
    """
    from . import privacy
    from .inbox import Inbox

    store = store or Store(settings.db)
    store.migrate()
    server = KezServer(settings, store)
    inbox = Inbox(server, clock=clock or time.time)
    privacy.install(debug=settings.log_level == "debug")
    push = build_push(server)
    from .profiles import ProfileApi

    profiles = ProfileApi(server)
    server.push = push.service
    # every message this node stores for a handle wakes that handle's browsers (empty pushes)
    inbox.events.on_stored(lambda handle, _seq: push.service.message_stored(handle))
    if settings.nostr_relays:
        from .nostr_listen import NostrListener

        server.nostr = NostrListener(
            store, server.registry, settings.nostr_relays, push.service.message_stored
        )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await push.service.start()
        if server.nostr is not None:
            await server.nostr.start()
        try:
            async with inbox.running():
                if freeze_gc:
                    freeze_startup_objects()
                yield
        finally:
            if server.nostr is not None:
                await server.nostr.close()
            await push.service.close()
            store.close()

    routes = [
        # the inbox first: its POST and GET are the hottest paths, and Starlette tries routes in order
        *inbox.routes(),
        Route("/v1/healthz", server.healthz, methods=["GET"]),
        Route("/v1/u/{handle}", server.lookup, methods=["GET"]),
        Route("/v1/register", server.register, methods=["POST"]),
        Route("/.well-known/webfinger", server.webfinger, methods=["GET"]),
        # one route per path, so a 405 lists every method of the path in Allow
        Route("/v1/sigchains/{alg}/{hex}", server.chain, methods=["GET", "POST"]),
        Route("/v1/sigchains/{alg}/{hex}/forks", server.get_forks, methods=["GET"]),
        *push.routes(),
        *profiles.routes(),
    ]
    handlers: dict[Any, Any] = {
        ApiError: _api_error,
        HTTPException: _http_error,
        ClientDisconnect: client_disconnected,
        **{error: _db_unavailable for error in _database_errors()},
        Exception: _internal_error,
    }
    app = KezApp(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    writes = TokenBuckets(settings.write_burst, settings.write_rate)
    reads = TokenBuckets(settings.read_burst, settings.read_rate)
    app.add_middleware(RateLimit, writes=writes, reads=reads)
    app.add_middleware(BodyDeadline, seconds=settings.body_timeout)
    from .fastpath import InboxFastPath

    # the inbox's POST and GET skip the middleware and the router: the same rules, in one place
    app.fast = InboxFastPath(
        inbox, writes=writes, reads=reads, body_timeout=settings.body_timeout, handlers=handlers
    )
    app.state.kez = server
    app.state.inbox = inbox
    return app


def create_app_from_env() -> Starlette:
    """`create_app` with settings from the `KEZ_SERVER_*` environment variables."""
    return create_app(ServerSettings.from_env(), freeze_gc=True)
