"""A real nostr relay on 127.0.0.1 for tests and benchmarks, with a fault-injecting front.

    from kez_channel_nostr.testing import running_server

    with running_server(latency=0.05) as server:
        server.seed_proof(nostr_secret, "kez:z1:…")           # a signed kind-30078 d=kez event
        ctx = ChannelContext(options=server.ctx_options(), timeout=5)
        outcome = await NostrChannel().fetch(pubkey_hex, ctx)

Two parts run for the duration of the `with` block:

* the real relay: the `nostr-relay` console script (PyPI `nostr-relay`),
  started as a subprocess on a free port with SQLite storage in a temporary
  folder, authentication (unless `running_relay(auth_required=True)`) and
  rate limits off, signature checks on;
* a small WebSocket server in a background thread (`server.url`) that
  forwards every frame between the client and the relay, holding each frame
  the relay sends for `latency` seconds (nostr-relay cannot add latency), and
  that can be told to misbehave for the next connections: answer the
  handshake with an HTTP status (`fail_next`), accept and never answer
  (`silence_next`), answer with a frame that is not JSON (`malformed_next`),
  refuse like a restricted relay (`refuse_next`, CLOSED / OK false), or add
  events of its own to every answer (`inject_events`, e.g. forged ones).

Fixed fault addresses exist too: `refused_url` (nothing listens; connections
are refused), `silent_url` (accepts, never answers) and `malformed_url`
(answers anything with a frame that is not JSON).

Only tests and benchmarks import this module; it imports `websockets` at the
top and starts processes.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect as async_connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.client import connect as sync_connect

from .channel import PROOF_D_TAG, PROOF_KIND, RELAYS_OPTION

__all__ = ["NostrTestServer", "RelayProcess", "running_relay", "running_server"]

MALFORMED_FRAME = 'this is not JSON {"'
_START_TIMEOUT = 60.0

_CONFIG = """\
# nostr-relay configuration written by kez_channel_nostr.testing
DEBUG: false
relay_name: kez test relay
relay_description: local relay for KEZ tests
storage:
  sqlalchemy.url: "sqlite+aiosqlite:///{db}"
  num_concurrent_reqs: 20
  num_concurrent_adds: 2
  validators:
    - nostr_relay.validators.is_not_too_large
    - nostr_relay.validators.is_signed
    - nostr_relay.validators.is_recent
verification:
  nip05_verification: disabled
gunicorn:
  bind: "127.0.0.1:{port}"
  workers: 1
  loglevel: warning
  backlog: 2048
{authentication}
max_event_size: {max_event_size}
message_timeout: 1800
subscription_limit: 64
max_limit: 6000
"""


_NO_AUTH = "authentication:\n  enabled: false"
# NIP-42 required for reading and writing; any key that authenticates may do both
# (`_auth_relay.AuthenticatedMayWrite`), anonymous clients neither.
_AUTH_REQUIRED = """\
authentication:
  enabled: true
  authenticator_class: kez_channel_nostr._auth_relay.AuthenticatedMayWrite
  relay_urls:
    - {url}
  actions:
    save: w
    query: r"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _relay_command(config: Path) -> list[str]:
    script = Path(sys.executable).with_name("nostr-relay")
    if not script.exists():
        found = shutil.which("nostr-relay")
        script = Path(found) if found else script
    if script.exists():
        return [str(script), "-c", str(config), "serve", "--use-uvicorn"]
    # Same interpreter, same entry point, when the console script is not on disk.
    code = "import sys; from nostr_relay.cli import main; sys.argv[0] = 'nostr-relay'; main()"
    return [sys.executable, "-c", code, "-c", str(config), "serve", "--use-uvicorn"]


def _answers_req(url: str, timeout: float = 2.0) -> bool:
    """True when a relay at `url` answers a REQ with EOSE (it is up and its database is ready).

    A relay that asks for NIP-42 AUTH gets it (a one-time key) and the REQ again.
    """
    from .nip42 import one_time_signer

    request = json.dumps(["REQ", "ready", {"kinds": [PROOF_KIND], "limit": 1}])
    try:
        with sync_connect(url, open_timeout=timeout, close_timeout=1) as ws:
            ws.send(request)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
                if message[:2] == ["EOSE", "ready"]:
                    return True
                if message[0] == "AUTH" and len(message) >= 2:
                    ws.send(json.dumps(["AUTH", one_time_signer()(url, message[1])]))
                    ws.send(request)
    except Exception:  # noqa: BLE001 - not up yet (refused, reset, half-started, garbage)
        return False
    return False


class RelayProcess:
    """The `nostr-relay` server as a subprocess on 127.0.0.1 (SQLite in a temporary folder)."""

    def __init__(self, *, max_event_size: int = 8192, auth_required: bool = False) -> None:
        self.max_event_size = max_event_size
        self.auth_required = auth_required
        self.port = 0
        self.url = ""
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self) -> None:
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probing and binding
            try:
                self._start_once()
                return
            except RuntimeError as exc:
                last_error = str(exc)
                self.stop()
        raise RuntimeError(last_error)

    def pause(self) -> None:
        """Stop the relay process but keep its port and database: `resume()` brings it back (a
        relay that went down and came back, with the events it stored)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def resume(self) -> None:
        """Start the relay again after `pause()`, on the same port with the same database."""
        if self._dir is None:
            raise RuntimeError("resume() after pause(), not after stop()")
        self._start_once(again=True)

    def _start_once(self, again: bool = False) -> None:
        if not again:
            self._dir = tempfile.TemporaryDirectory(prefix="kez-nostr-relay-")
            self.port = _free_port()
        assert self._dir is not None
        folder = Path(self._dir.name)
        self.url = f"ws://127.0.0.1:{self.port}"
        config = folder / "config.yaml"
        config.write_text(
            _CONFIG.format(
                db=folder / "relay.sqlite3",
                port=self.port,
                max_event_size=self.max_event_size,
                authentication=_AUTH_REQUIRED.format(url=self.url)
                if self.auth_required
                else _NO_AUTH,
            )
        )
        self._log = open(folder / "relay.log", "ab")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            _relay_command(config),
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"nostr-relay exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            if _answers_req(self.url):
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"nostr-relay did not answer within {_START_TIMEOUT:g} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        if self._dir is None:
            return ""
        path = Path(self._dir.name) / "relay.log"
        with contextlib.suppress(OSError):
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


class _Front:
    """The WebSocket server in front of the relay (its own event loop in a daemon thread)."""

    def __init__(self, upstream: str, latency: float) -> None:
        self.upstream = upstream
        self.latency = latency
        self.lock = threading.Lock()
        self.faults: collections.deque[tuple[Any, ...]] = collections.deque()
        self.injected: list[dict[str, Any]] = []
        self.client_messages: collections.deque[Any] = collections.deque(maxlen=10_000)
        self.connections = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="kez-nostr-front", daemon=True
        )
        self._server: Any = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)

    async def _start(self) -> None:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            max_size=None,
            ping_interval=None,
            compression=None,
            backlog=2048,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(15)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)
        if not self._loop.is_running():
            self._loop.close()

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --------------------------------------------------------------- faults

    def _take_fault(self, kinds: tuple[str, ...]) -> tuple[Any, ...] | None:
        with self.lock:
            if self.faults and self.faults[0][0] in kinds:
                return self.faults.popleft()
        return None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        fault = self._take_fault(("http",))
        if fault is None:
            return None
        _, status, headers = fault
        response = connection.respond(status, f"HTTP {status} from the KEZ test relay front\n")
        for name, value in headers.items():
            response.headers[name] = value
        return response

    # ------------------------------------------------------------- handling

    async def _handle(self, client: ServerConnection) -> None:
        with self.lock:
            self.connections += 1
        path = client.request.path if client.request is not None else "/"
        fault = self._take_fault(("silent", "malformed", "refuse")) if path == "/" else None
        kind = (
            fault[0]
            if fault
            else {"/silent": "silent", "/malformed": "malformed"}.get(path, "proxy")
        )
        try:
            if kind == "silent":
                async for message in client:
                    self._log(message)
            elif kind == "malformed":
                async for message in client:
                    self._log(message)
                    await self._later(client, MALFORMED_FRAME)
            elif kind == "refuse":
                await self._refuse(client, fault[1] if fault else "blocked: test")
            else:
                await self._proxy(client)
        except ConnectionClosed:
            pass

    def _log(self, raw: str | bytes) -> Any:
        try:
            message = json.loads(raw)
        except (ValueError, TypeError):
            message = raw
        self.client_messages.append(message)
        return message

    async def _later(self, client: ServerConnection, frame: str) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        await client.send(frame)

    async def _refuse(self, client: ServerConnection, reason: str) -> None:
        async for raw in client:
            message = self._log(raw)
            if not isinstance(message, list) or len(message) < 2:
                await self._later(client, json.dumps(["NOTICE", "could not parse the message"]))
            elif message[0] == "REQ":
                await self._later(client, json.dumps(["CLOSED", message[1], reason]))
            elif message[0] == "EVENT" and isinstance(message[1], dict):
                await self._later(
                    client, json.dumps(["OK", message[1].get("id", ""), False, reason])
                )

    async def _proxy(self, client: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue[tuple[float, str | bytes] | None] = asyncio.Queue()

        def to_client(frame: str | bytes) -> None:
            outbox.put_nowait((loop.time() + self.latency, frame))

        async def deliver() -> None:
            # Frames keep their order; each leaves `latency` seconds after it arrived.
            while (item := await outbox.get()) is not None:
                due, frame = item
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await client.send(frame)

        sender = asyncio.create_task(deliver())
        try:
            async with async_connect(
                self.upstream, max_size=None, ping_interval=None, compression=None, open_timeout=10
            ) as upstream:

                async def from_relay() -> None:
                    async for frame in upstream:
                        to_client(frame)

                async def from_client() -> None:
                    async for raw in client:
                        message = self._log(raw)
                        if isinstance(message, list) and len(message) >= 2 and message[0] == "REQ":
                            with self.lock:
                                extra = list(self.injected)
                            for event in extra:
                                to_client(json.dumps(["EVENT", message[1], event]))
                        await upstream.send(raw)

                tasks = {asyncio.create_task(from_relay()), asyncio.create_task(from_client())}
                done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                for task in (*done, *pending):
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                        await task
        except OSError:
            await client.close(1011, "relay unreachable")
        finally:
            outbox.put_nowait(None)
            try:
                await asyncio.wait_for(sender, self.latency + 5)
            except (TimeoutError, ConnectionClosed):
                sender.cancel()


class NostrTestServer:
    """What `running_server` yields: a real relay behind a front with latency and faults."""

    def __init__(self, relay: RelayProcess, front: _Front, refused: socket.socket) -> None:
        self._relay = relay
        self._front = front
        self._refused = refused
        self._initial_latency = front.latency
        self.relay_url = relay.url  # the relay itself, no front (no latency, no faults)
        self.url = f"ws://127.0.0.1:{front.port}"  # through the front: use this in the channel
        self.silent_url = f"{self.url}/silent"
        self.malformed_url = f"{self.url}/malformed"
        self.refused_url = f"ws://127.0.0.1:{refused.getsockname()[1]}"

    # ---------------------------------------------------------- settings

    @property
    def latency(self) -> float:
        """Seconds every frame from the relay is held back by the front (settable)."""
        return self._front.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._front.latency = float(seconds)

    def ctx_options(self, *extra_relays: str) -> dict[str, Any]:
        """`ChannelContext.options` pointing the nostr channel at this relay (and any extra relays)."""
        return {RELAYS_OPTION.name: (self.url, *extra_relays)}

    # ------------------------------------------------------------- seeding

    def publish_event(self, event: dict[str, Any], *, timeout: float = 10.0) -> str:
        """Send a signed event straight to the relay; returns its OK message, raises if refused."""
        with sync_connect(self.relay_url, open_timeout=timeout, close_timeout=1) as ws:
            ws.send(json.dumps(["EVENT", event]))
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"the relay sent no OK for event {event.get('id')}")
                message = json.loads(ws.recv(timeout=left))
                if message[0] == "OK" and message[1] == event.get("id"):
                    if message[2] is not True:
                        raise RuntimeError(f"the relay refused the event: {message[3]}")
                    return str(message[3])

    def seed_proof(
        self,
        secret: bytes,
        proof_text: str,
        *,
        created_at: int | None = None,
        tags: list[list[str]] | None = None,
        kind: int = PROOF_KIND,
    ) -> dict[str, Any]:
        """Sign a proof event (kind 30078, `["d","kez"]`) with `secret`, publish it, return it."""
        from kez_core.plugin import sign_event

        event = sign_event(
            secret,
            kind,
            proof_text,
            [["d", PROOF_D_TAG]] if tags is None else tags,
            int(time.time()) if created_at is None else created_at,
        )
        self.publish_event(event)
        return event

    # -------------------------------------------------------------- faults

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        *,
        retry_after: float | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `count` WebSocket handshakes on `url` with HTTP `status` (no upgrade)."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = str(retry_after)
        with self._front.lock:
            self._front.faults.extend(("http", status, extra) for _ in range(count))

    def silence_next(self, count: int = 1) -> None:
        """Accept the next `count` connections on `url` and never answer them."""
        with self._front.lock:
            self._front.faults.extend(("silent",) for _ in range(count))

    def malformed_next(self, count: int = 1) -> None:
        """Answer every message on the next `count` connections with a frame that is not JSON."""
        with self._front.lock:
            self._front.faults.extend(("malformed",) for _ in range(count))

    def refuse_next(
        self, count: int = 1, reason: str = "blocked: refused by the test relay"
    ) -> None:
        """Next `count` connections: REQ gets `CLOSED`, EVENT gets `OK false`, with `reason`."""
        with self._front.lock:
            self._front.faults.extend(("refuse", reason) for _ in range(count))

    def inject_events(self, *events: dict[str, Any]) -> None:
        """Send these events (as they are, forged or not) in answer to every REQ through `url`."""
        with self._front.lock:
            self._front.injected.extend(events)

    @property
    def client_messages(self) -> list[Any]:
        """Messages clients sent through `url` (parsed JSON where possible), oldest first."""
        return list(self._front.client_messages)

    @property
    def connections(self) -> int:
        """Connections the front accepted so far."""
        return self._front.connections

    def reset(self) -> None:
        """Forget queued faults, injected events and logged messages; restore the initial latency."""
        with self._front.lock:
            self._front.faults.clear()
            self._front.injected.clear()
            self._front.client_messages.clear()
        self._front.latency = self._initial_latency


_RUNNING: set[RelayProcess] = set()


@atexit.register
def _stop_leftovers() -> None:  # a test run interrupted inside a `with` block
    for relay in list(_RUNNING):
        relay.stop()


@contextlib.contextmanager
def running_relay(
    *, max_event_size: int = 8192, auth_required: bool = False
) -> Iterator[RelayProcess]:
    """Only the real relay (no front): `.url` is its ws:// address.

    `auth_required`: the relay sends a NIP-42 challenge on connect and serves
    only clients that answered it (any key; nostr-relay's own checks of
    kind, relay URL, challenge and time), as restricted public relays do.
    """
    relay = RelayProcess(max_event_size=max_event_size, auth_required=auth_required)
    _RUNNING.add(relay)
    try:
        relay.start()
        yield relay
    finally:
        relay.stop()
        _RUNNING.discard(relay)


@contextlib.contextmanager
def running_server(
    latency: float = 0.0, *, max_event_size: int = 8192
) -> Iterator[NostrTestServer]:
    """A real nostr relay behind a latency/fault front on 127.0.0.1; everything stops on exit.

    `latency` holds every frame from the relay back that many seconds (the
    benchmark uses 0.05 with hundreds of concurrent fetches). `max_event_size`
    is the relay's limit on event content (larger events are refused with
    `OK false`).
    """
    refused = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    refused.bind(("127.0.0.1", 0))  # bound, never listening: connections to it are refused
    try:
        with running_relay(max_event_size=max_event_size) as relay:
            front = _Front(relay.url, latency)
            try:
                front.start()
                yield NostrTestServer(relay, front, refused)
            finally:
                front.stop()
    finally:
        refused.close()
