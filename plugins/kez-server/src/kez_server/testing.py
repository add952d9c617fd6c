"""Run the real kez-server in a background thread, for tests, demos and benchmarks::

    from kez_server.testing import running_server

    with running_server() as server:                    # SQLite in a temporary folder
        httpx.get(server.url + "/v1/healthz")
    with running_server(db="postgresql://…", server_name="example.org", write_burst=5, write_rate=1):
        ...

`running_server(db=None, server_name="example.org", **settings)` starts the
same app `kez-server` serves (database migrated first) under uvicorn on
127.0.0.1 with a free port, and yields a `RunningServer` whose `.url` is the
base URL (`http://127.0.0.1:<port>`, no trailing slash). `db` is a SQLite
file path or a `postgresql://` URL; None means a fresh SQLite file in a
temporary folder removed afterwards. `clock` (unix seconds) replaces the
inbox's clock (auth skew, the 7-day purge). `settings` are any other
`ServerSettings` fields (`write_burst`, `write_rate`, `read_burst`,
`read_rate`, `max_chain_body`, `public_url`, `reserved`, the timeouts,
the connection cap and the quotas); unlike the command, writes are not
rate-limited unless `write_burst` is given. The server runs with the
command's HTTP protocol (header deadline, connection cap). The
server stops when the block ends, even on error. The VAPID key is a fresh
file in the temporary folder unless `vapid_key` is given.

`fake_push_service(public_key, subject)` runs a stand-in Web Push service
(RFC 8030, with RFC 8292 VAPID checks) on 127.0.0.1; see `FakePushService`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
from kez_core.localserver import serve_asgi
from starlette.applications import Starlette

from .app import create_app
from .config import ServerSettings
from .db import Store
from .limits import uvicorn_options

__all__ = ["FakePushService", "PushRecord", "RunningServer", "fake_push_service", "running_server"]


@attrs.frozen
class RunningServer:
    url: str  # http://127.0.0.1:<port>
    settings: ServerSettings
    app: Starlette

    @property
    def store(self) -> Store:
        return self.app.state.kez.store

    @property
    def server_name(self) -> str:
        return self.settings.server_name


@contextmanager
def running_server(
    db: str | None = None,
    server_name: str = "example.org",
    *,
    clock: Callable[[], float] | None = None,
    push_lookup: Any = None,
    **settings: Any,
) -> Iterator[RunningServer]:
    """Serve kez-server on 127.0.0.1 (a free port) in a thread; see the module docstring.

    `push_lookup(host, port) -> [address, …]` (async) replaces the system
    resolver of the push endpoint rules, so tests that subscribe made-up
    public names make no DNS queries.
    """
    with tempfile.TemporaryDirectory(prefix="kez-server-") as tmp:
        settings.setdefault("write_burst", 0)
        settings.setdefault("vapid_key", str(Path(tmp) / "vapid.pem"))
        config = ServerSettings(
            server_name=server_name,
            db=db or str(Path(tmp) / "kez.db"),
            bind="127.0.0.1:0",
            **settings,
        )
        app = create_app(config, clock=clock)
        if push_lookup is not None:
            app.state.kez.push.policy.lookup = push_lookup
        try:
            with serve_asgi(
                app, name="kez-server", lifespan="on", **uvicorn_options(config)
            ) as url:
                yield RunningServer(url, config, app)
        finally:
            app.state.kez.store.close()


@contextmanager
def running_callout(server: RunningServer, nats_url: str, keys: Any = None) -> Iterator[Any]:
    """Serve the NATS auth callout of `server` against the nats-server at `nats_url` in a thread.

    `keys` are the server's `NatsKeys` (default: the ones beside its SQLite
    database, made on first use). Yields the `Authorizer`; returns once the
    callout is subscribed, stops when the block ends.
    """
    import asyncio
    import threading

    from .nats_callout import Authorizer, run_callout
    from .nats_config import load_keys

    authorizer = Authorizer(server.store, keys or load_keys(server.settings.db))
    loop = asyncio.new_event_loop()
    ready, stop = threading.Event(), asyncio.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.ensure_future(run_callout(nats_url, authorizer, ready=started, stop=stop))
        await asyncio.wait(
            [task, asyncio.ensure_future(started.wait())], return_when="FIRST_COMPLETED"
        )
        ready.set()
        await task

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="kez-nats-callout", daemon=True)
    thread.start()
    ready.wait(30)
    if failure:
        raise failure[0]
    try:
        yield authorizer
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


# --------------------------------------------------------- a fake push service


@attrs.frozen
class PushRecord:
    """One push the fake push service received, and what its checks found."""

    path: str
    body: bytes
    ttl: str | None
    topic: str | None
    claims: dict[str, Any]
    problems: tuple[str, ...]  # empty when the push was well-formed


class FakePushService:
    """What a browser vendor's push service does with a push, checked strictly.

    Each POST to any path is checked: `Authorization: vapid t=<JWT>, k=<key>`
    where k is `public_key` (the kez-server's VAPID key, base64url) and the
    JWT is ES256, signed by it, with `aud` the origin the request came to,
    `exp` in the future and at most 24 h ahead, `sub` equal to `subject`; a
    `TTL` header of digits. Every push is recorded (`records`) with the
    problems found. The answer is `answers[path]` (default 201): a status
    code, `"hang"`, which holds the request until `release` is set and
    then answers 201, or `"redirect:URL"` (a 307 to URL). `in_flight` and `max_in_flight` count concurrent
    requests; `arrived` is set at each arrival.
    """

    def __init__(self, public_key: str, subject: str) -> None:
        import threading

        self.public_key = public_key
        self.subject = subject
        self.records: list[PushRecord] = []
        self.answers: dict[str, int | str] = {}
        self.release = threading.Event()
        self.arrived = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.url = ""  # set when serving
        self._lock = threading.Lock()

    def app(self) -> Starlette:
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        async def push(request: Request) -> Response:
            import asyncio

            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.arrived.set()
            try:
                body = await request.body()
                origin = f"{request.url.scheme}://{request.headers.get('host', '')}"
                claims, problems = self.check(request.headers, origin)
                if body:
                    problems.append(f"the body is not empty ({len(body)} bytes)")
                answer = self.answers.get(request.url.path, 201)
                if answer == "hang":
                    while not self.release.is_set():
                        await asyncio.sleep(0.01)
                    answer = 201
                with self._lock:
                    self.records.append(
                        PushRecord(
                            request.url.path,
                            body,
                            request.headers.get("ttl"),
                            request.headers.get("topic"),
                            claims,
                            tuple(problems),
                        )
                    )
                if isinstance(answer, str) and answer.startswith("redirect:"):
                    return Response(status_code=307, headers={"location": answer[9:]})
                return Response(status_code=int(answer))
            finally:
                with self._lock:
                    self.in_flight -= 1

        return Starlette(routes=[Route("/{path:path}", push, methods=["POST"])])

    def check(self, headers: Any, origin: str) -> tuple[dict[str, Any], list[str]]:
        """The VAPID claims of a push and the problems with its headers."""
        import base64
        import json
        import time

        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        def unb64(text: str) -> bytes:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

        problems: list[str] = []
        ttl = headers.get("ttl")
        if ttl is None or not ttl.isdigit():
            problems.append(f"TTL header missing or not digits: {ttl!r}")
        auth = headers.get("authorization", "")
        scheme, _, params = auth.partition(" ")
        fields = dict(part.strip().split("=", 1) for part in params.split(",") if "=" in part)
        if scheme.lower() != "vapid" or "t" not in fields or "k" not in fields:
            return {}, [*problems, f"Authorization is not 'vapid t=…, k=…': {auth[:60]!r}"]
        if fields["k"].rstrip("=") != self.public_key:
            problems.append("k is not the server's VAPID public key")
        try:
            head, payload, sig = fields["t"].split(".")
            header = json.loads(unb64(head))
            claims = json.loads(unb64(payload))
            raw = unb64(sig)
            key = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), unb64(self.public_key)
            )
            der = encode_dss_signature(
                int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
            )
            key.verify(der, f"{head}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return {}, [*problems, "the JWT signature does not verify with the VAPID key"]
        except Exception as exc:  # noqa: BLE001 - any malformed token is a problem to report
            return {}, [*problems, f"the JWT is malformed: {exc!r}"]
        if header.get("alg") != "ES256":
            problems.append(f"JWT alg is {header.get('alg')!r}, not ES256")
        if len(raw) != 64:
            problems.append("the JWT signature is not 64 bytes (r || s)")
        if claims.get("aud") != origin:
            problems.append(f"aud {claims.get('aud')!r} is not this origin {origin!r}")
        exp = claims.get("exp")
        if not isinstance(exp, int) or not time.time() < exp <= time.time() + 86400:
            problems.append(f"exp {exp!r} is not within the next 24 h")
        if claims.get("sub") != self.subject:
            problems.append(f"sub {claims.get('sub')!r} is not {self.subject!r}")
        return claims, problems


@contextmanager
def fake_push_service(public_key: str, subject: str) -> Iterator[FakePushService]:
    """Serve a `FakePushService` on 127.0.0.1 (a free port); its `.url` is the base URL."""
    fake = FakePushService(public_key, subject)
    with serve_asgi(fake.app(), name="fake-push-service") as url:
        fake.url = url
        try:
            yield fake
        finally:
            fake.release.set()  # let held requests end before the server stops
