"""NIP-01 over WebSocket: ask a relay for events, hand a relay an event.

This module imports `websockets` at the top, so the channel imports it only
inside `fetch` and `publish` (`kez --help` must not load it).

Both calls are bounded by one deadline (the caller's `ctx.timeout`) and never
raise for anything a relay or the network does: every failure ends up as a
sentence in the returned reply.

NIP-42: every call takes an optional `auth` signer (`nip42.AuthSigner`).
With one, a relay's `["AUTH", challenge]` is answered with a signed
kind-22242 event, and a request the relay refused before that (`OK false`
or `CLOSED` saying `auth-required:` / `restricted:`, or nostr-relay's
refusal sent before the answer arrived) is sent once more. A relay that
challenged once is remembered for the process, so later connections to it
wait for the challenge and authenticate before asking. Without a signer,
challenges are ignored, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import secrets
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)

# One claim event is well under 2 KiB; a relay frame beyond 1 MiB is not an answer to us.
MAX_MESSAGE = 1 << 20
# We ask for `limit: 10`; a relay that sends far more is cut off (what came is still read).
MAX_EVENTS_PER_RELAY = 100
CLOSE_TIMEOUT = 1.0
USER_AGENT = "kez-channel-nostr/0.1 (+https://kez.lat)"
_MAX_RELAY_TEXT = 200
# A relay known to challenge gets this long to send its challenge before we ask anyway.
AUTH_WAIT = 1.0

if TYPE_CHECKING:
    from .nip42 import AuthSigner

# Relays (URLs as dialled) that sent a NIP-42 challenge in this process.
_CHALLENGERS: set[str] = set()


@attrs.define
class QueryReply:
    """What one relay said to one REQ."""

    url: str
    events: list[Any] = attrs.field(factory=list)
    answered: bool = False  # EOSE (or enough events) came back
    error: str | None = None
    notices: list[str] = attrs.field(factory=list)
    retry_after: float | None = None


@attrs.define
class PublishReply:
    """What one relay said to one EVENT."""

    url: str
    accepted: bool = False
    message: str = ""  # the relay's OK message, or why there was none
    retry_after: float | None = None
    answered: bool = False  # an OK came back (accepted or refused), as opposed to a failure to talk


class _Malformed(Exception):
    """A relay frame that is not a NIP-01 message (not JSON, not an array, no verb)."""


def _dumps(message: list[Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _parse(raw: str | bytes) -> list[Any]:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Malformed("a binary frame that is not UTF-8") from exc
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _Malformed(f"not JSON: {_clean(raw, 60)!r}") from exc
    if not isinstance(message, list) or not message or not isinstance(message[0], str):
        raise _Malformed("not a JSON array starting with a message type")
    return message


def _clean(text: object, limit: int = _MAX_RELAY_TEXT) -> str:
    """Relay-supplied text made safe to print: no control characters, bounded length."""
    text = text if isinstance(text, str) else ""
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _item(message: list[Any], index: int) -> str:
    return _clean(message[index]) if len(message) > index else ""


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _describe(exc: BaseException) -> tuple[str, float | None]:
    """A short sentence for a failure to talk to a relay (and a Retry-After, if any)."""
    if isinstance(exc, InvalidStatus):
        response = exc.response
        status = response.status_code
        retry = _retry_after(response.headers.get("Retry-After"))
        what = {429: "rate limit", 401: "unauthorized", 403: "forbidden", 404: "not found"}.get(
            status, "server error" if status >= 500 else "refused the WebSocket upgrade"
        )
        text = f"answered HTTP {status} ({what}) to the WebSocket handshake"
        if retry is not None:
            text += f"; retry after {retry:.0f} s"
        return text, retry
    if isinstance(exc, InvalidURI):
        return "is not a valid ws:// or wss:// URL", None
    if isinstance(exc, ConnectionClosed):
        return "closed the connection before answering", None
    if isinstance(exc, ConnectionRefusedError):
        return "refused the connection", None
    if isinstance(exc, socket.gaierror):
        return "host name could not be resolved", None
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return f"TLS failed ({_clean(str(exc), 120)})", None
    if isinstance(exc, OSError):
        return (
            f"could not be reached ({_clean(exc.strerror or str(exc) or type(exc).__name__, 120)})",
            None,
        )
    if isinstance(exc, InvalidHandshake | WebSocketException):
        return f"failed the WebSocket handshake ({_clean(str(exc), 120)})", None
    return f"failed ({type(exc).__name__}: {_clean(str(exc), 120)})", None


def _connect(url: str) -> Any:
    return connect(
        url,
        open_timeout=None,  # the caller's deadline covers the whole exchange
        close_timeout=CLOSE_TIMEOUT,
        ping_interval=None,
        max_size=MAX_MESSAGE,
        compression=None,  # frames are small; deflate costs both sides CPU for nothing
        user_agent_header=USER_AGENT,
    )


def _challenge(message: list[Any]) -> str | None:
    """The challenge of an `["AUTH", <challenge>]` frame, or None for any other frame."""
    if message[0] == "AUTH" and len(message) >= 2 and isinstance(message[1], str) and message[1]:
        return message[1]
    return None


def _wants_auth(text: str) -> bool:
    """A refusal that authenticating may lift (NIP-42 / NIP-01 machine-readable prefixes)."""
    return text.startswith(("auth-required:", "restricted:"))


async def _answer(ws: ClientConnection, url: str, auth: AuthSigner, challenge: str) -> None:
    _CHALLENGERS.add(url)
    await ws.send(_dumps(["AUTH", auth(url, challenge)]))


async def _auth_first(ws: ClientConnection, url: str, auth: AuthSigner | None) -> bool:
    """For a relay that challenged before: wait (at most `AUTH_WAIT`) for its challenge and answer it.

    True when answered. Frames before the challenge are dropped (nothing
    was asked yet). A relay that stopped challenging costs `AUTH_WAIT` once
    and is forgotten.
    """
    if auth is None or url not in _CHALLENGERS:
        return False
    if await _await_challenge(ws, url, auth):
        return True
    _CHALLENGERS.discard(url)
    return False


async def _await_challenge(ws: ClientConnection, url: str, auth: AuthSigner) -> bool:
    """Read frames for at most `AUTH_WAIT` until a challenge comes, and answer it; False if none came.

    For a refusal that asks for authentication (`auth-required:`) from a
    relay that has not challenged yet: the challenge may follow it. Other
    frames read meanwhile are dropped (the request they would answer was refused).
    """
    try:
        async with asyncio.timeout(AUTH_WAIT):
            while True:
                challenge = _challenge(_parse(await ws.recv()))
                if challenge is not None:
                    await _answer(ws, url, auth, challenge)
                    return True
    except TimeoutError:
        return False


def _add_event(reply: QueryReply, event: Any, dedupe: bool) -> None:
    """Collect `event`; after a re-sent REQ a relay may send an event twice, kept once."""
    if (
        dedupe
        and isinstance(event, dict)
        and any(
            isinstance(seen, dict) and seen.get("id") == event.get("id") for seen in reply.events
        )
    ):
        return
    reply.events.append(event)


async def _say_close(ws: ClientConnection, subid: str) -> None:
    with contextlib.suppress(ConnectionClosed, OSError):
        await ws.send(_dumps(["CLOSE", subid]))


async def query(
    url: str, filter_: dict[str, Any], timeout: float, *, auth: AuthSigner | None = None
) -> QueryReply:
    """Send `["REQ", subid, filter_]` to one relay and collect its events until EOSE.

    Stops at EOSE, CLOSED, a malformed frame, `MAX_EVENTS_PER_RELAY` events or
    `timeout` seconds, whichever comes first; sends `CLOSE` when the
    subscription is still open. With `auth`, answers a NIP-42 challenge and
    asks once more (module docstring). Never raises (except for cancellation).
    """
    reply = QueryReply(url)
    subid = "kez-" + secrets.token_hex(8)
    request = _dumps(["REQ", subid, filter_])

    def fail(text: str) -> None:
        if not reply.answered and reply.error is None:
            reply.error = text

    try:
        async with asyncio.timeout(timeout), _connect(url) as ws:
            authed = await _auth_first(ws, url, auth)
            resent = False
            await ws.send(request)
            while True:
                message = _parse(await ws.recv())
                verb = message[0]
                challenge = _challenge(message)
                if challenge is not None and auth is not None:
                    await _answer(ws, url, auth, challenge)
                    authed = True
                    if not resent:  # the REQ went out unauthenticated: ask again
                        resent = True
                        await ws.send(request)
                    continue
                if verb == "EVENT" and len(message) >= 3 and message[1] == subid:
                    _add_event(reply, message[2], resent)
                    if len(reply.events) >= MAX_EVENTS_PER_RELAY:
                        reply.answered = True
                        reply.notices.append(
                            f"sent more than {MAX_EVENTS_PER_RELAY} events; read no further"
                        )
                        await _say_close(ws, subid)
                        break
                elif verb == "EOSE" and len(message) >= 2 and message[1] == subid:
                    reply.answered = True
                    await _say_close(ws, subid)
                    break
                elif verb == "CLOSED" and len(message) >= 2 and message[1] == subid:
                    reason = _item(message, 2)
                    if auth is not None and not resent and _wants_auth(reason):
                        authed = authed or await _await_challenge(ws, url, auth)
                        if authed:
                            resent = True
                            await ws.send(request)
                            continue
                    fail(f"closed the subscription: {reason or 'no reason given'}")
                    break
                elif verb == "NOTICE":
                    reply.notices.append(_item(message, 1))
                # OK, other subscriptions, unknown verbs (and challenges without a signer): not for this read.
    except TimeoutError:
        fail(f"no answer within {timeout:g} s")
    except _Malformed as exc:
        fail(f"sent a malformed message ({exc})")
    except Exception as exc:  # noqa: BLE001 - a relay must never take verification down
        text, reply.retry_after = _describe(exc)
        fail(text)
    if reply.error and reply.notices:
        reply.error += f" (notice: {reply.notices[-1]})"
    return reply


async def send_event(
    url: str, event: dict[str, Any], timeout: float, *, auth: AuthSigner | None = None
) -> PublishReply:
    """Send `["EVENT", event]` to one relay and wait for its `["OK", id, accepted, message]`.

    With `auth`, answers a NIP-42 challenge and sends the event once more
    when the relay refused it for want of authentication (module docstring).
    Never raises (except for cancellation): a relay that cannot be reached,
    answers garbage or says nothing within `timeout` is a refusal with a reason.
    """
    reply = PublishReply(url)
    notices: list[str] = []
    frame = _dumps(["EVENT", event])
    try:
        async with asyncio.timeout(timeout), _connect(url) as ws:
            authed = await _auth_first(ws, url, auth)
            resent = False
            await ws.send(frame)
            while True:
                message = _parse(await ws.recv())
                verb = message[0]
                challenge = _challenge(message)
                if challenge is not None and auth is not None:
                    await _answer(ws, url, auth, challenge)
                    authed = True
                    continue
                # nostr-relay (1.14) answers a refusal with an empty event id; one
                # event is outstanding on this connection, so that OK is ours.
                if verb == "OK" and len(message) >= 3 and message[1] in (event["id"], ""):
                    if (
                        message[2] is not True
                        and auth is not None
                        and not resent
                        and _wants_auth(_item(message, 3))
                    ):
                        # refused before our answer reached it, or the challenge follows the refusal
                        authed = authed or await _await_challenge(ws, url, auth)
                        if authed:
                            resent = True
                            await ws.send(frame)
                            continue
                    reply.accepted = message[2] is True
                    reply.answered = True
                    reply.message = _item(message, 3) or (
                        "accepted" if reply.accepted else "refused"
                    )
                    break
                if verb == "NOTICE":
                    notices.append(_item(message, 1))
    except TimeoutError:
        reply.message = f"no OK within {timeout:g} s"
    except _Malformed as exc:
        reply.message = f"sent a malformed message ({exc})"
    except Exception as exc:  # noqa: BLE001 - one relay's failure is reported, not raised
        if not reply.message:
            reply.message, reply.retry_after = _describe(exc)
    if not reply.accepted and notices:
        reply.message += f" (notice: {notices[-1]})"
    return reply


# ------------------------------------------------------------ one run's relay connections

# Subscriptions open at once on one connection. Relays cap them per
# connection (nostr-relay: 32 by default; strfry and others: about 20), so a
# run opens more connections to a relay rather than more subscriptions.
SUBSCRIPTIONS_PER_CONNECTION = 16


@attrs.define
class _Subscription:
    reply: QueryReply
    done: asyncio.Future[None]
    request: str = ""  # the REQ frame, sent again after a NIP-42 answer
    resent: bool = False

    def finish(self, error: str | None = None) -> None:
        if error is not None and not self.reply.answered and self.reply.error is None:
            self.reply.error = error
        if not self.done.done():
            self.done.set_result(None)


class _Connection:
    """One WebSocket to a relay, opened on first use, carrying many subscriptions.

    A reader task hands every frame to the subscription it names. When the
    connection ends (the relay closed it, or sent a frame that is not NIP-01)
    every subscription still waiting fails with the reason, and the next query
    opens a new connection.
    """

    def __init__(self, url: str, timeout: float, auth: AuthSigner | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.auth = auth
        self._authed = False
        self.load = 0  # queries using or waiting for this connection
        self.slots = asyncio.Semaphore(SUBSCRIPTIONS_PER_CONNECTION)
        self.subscriptions: dict[str, _Subscription] = {}
        self._ws: ClientConnection | None = None
        self._opening: asyncio.Task[ClientConnection] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    async def open(self) -> ClientConnection:
        """The open connection; concurrent callers share one handshake (bounded by the timeout)."""
        if self._ws is not None:
            return self._ws
        if self._closed:
            raise ConnectionClosed(None, None)
        if self._opening is None:
            self._opening = self._spawn(self._handshake())
        # shield: a caller that gives up must not cancel the handshake the others wait for.
        return await asyncio.shield(self._opening)

    async def _handshake(self) -> ClientConnection:
        try:
            async with asyncio.timeout(self.timeout):
                ws = await _connect(self.url)
                try:
                    self._authed = await _auth_first(ws, self.url, self.auth)
                except BaseException:
                    await ws.close()
                    raise
        finally:
            self._opening = None
        if self._closed:
            await ws.close()
            raise ConnectionClosed(None, None)
        self._ws = ws
        self._spawn(self._read(ws))
        return ws

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_retrieve)
        return task

    async def _read(self, ws: ClientConnection) -> None:
        error = "closed the connection before answering"
        try:
            async for raw in ws:
                try:
                    message = _parse(raw)
                except _Malformed as exc:
                    error = f"sent a malformed message ({exc})"
                    break
                await self._dispatch(ws, message)
        except ConnectionClosed:
            pass
        except Exception as exc:  # noqa: BLE001 - a relay must never take verification down
            error = _describe(exc)[0]
        finally:
            if self._ws is ws:
                self._ws = None
            waiting = list(self.subscriptions.values())
            self.subscriptions.clear()
            for subscription in waiting:
                subscription.finish(error)
            with contextlib.suppress(Exception):
                await ws.close()

    async def _dispatch(self, ws: ClientConnection, message: list[Any]) -> None:
        verb = message[0]
        challenge = _challenge(message)
        if challenge is not None and self.auth is not None:
            await _answer(ws, self.url, self.auth, challenge)
            self._authed = True
            for subscription in list(
                self.subscriptions.values()
            ):  # sent unauthenticated: ask again
                await self._resend(ws, subscription)
            return
        if verb == "NOTICE":
            text = _item(message, 1)
            for subscription in self.subscriptions.values():
                subscription.reply.notices.append(text)
            return
        if verb not in ("EVENT", "EOSE", "CLOSED") or len(message) < 2:
            return  # AUTH challenges, OK and unknown verbs: not for a read
        subid = message[1]
        subscription = self.subscriptions.get(subid) if isinstance(subid, str) else None
        if subscription is None:
            return  # a subscription that ended already (timed out, or cut off)
        reply = subscription.reply
        if verb == "EVENT":
            if len(message) < 3:
                return
            _add_event(reply, message[2], subscription.resent)
            if len(reply.events) < MAX_EVENTS_PER_RELAY:
                return
            reply.notices.append(f"sent more than {MAX_EVENTS_PER_RELAY} events; read no further")
        if verb == "CLOSED":
            reason = _item(message, 2)
            if self.auth is not None and not subscription.resent and _wants_auth(reason):
                if self._authed:
                    await self._resend(ws, subscription)
                else:  # the challenge may follow the refusal; answering it asks again
                    self._spawn(self._give_up_unless_resent(subid, subscription, reason))
                return
            del self.subscriptions[subid]
            subscription.finish(f"closed the subscription: {reason or 'no reason given'}")
            return
        reply.answered = True  # EOSE, or enough events
        del self.subscriptions[subid]
        subscription.finish()
        await _say_close(ws, subid)

    async def _give_up_unless_resent(
        self, subid: str, subscription: _Subscription, reason: str
    ) -> None:
        await asyncio.sleep(AUTH_WAIT)
        if not subscription.resent and self.subscriptions.get(subid) is subscription:
            del self.subscriptions[subid]
            subscription.finish(f"closed the subscription: {reason}")

    async def _resend(self, ws: ClientConnection, subscription: _Subscription) -> None:
        if not subscription.resent and subscription.request:
            subscription.resent = True
            await ws.send(subscription.request)

    async def query(self, filter_: dict[str, Any], timeout: float) -> QueryReply:
        """`query` over this connection: REQ, events until EOSE, CLOSE. Never raises."""
        reply = QueryReply(self.url)
        subid = "kez-" + secrets.token_hex(8)
        ws: ClientConnection | None = None

        def fail(text: str) -> None:
            if not reply.answered and reply.error is None:
                reply.error = text

        self.load += 1
        try:
            async with asyncio.timeout(timeout), self.slots:
                ws = await self.open()
                request = _dumps(["REQ", subid, filter_])
                subscription = _Subscription(
                    reply, asyncio.get_running_loop().create_future(), request
                )
                self.subscriptions[subid] = subscription
                await ws.send(request)
                await subscription.done
        except TimeoutError:
            fail(f"no answer within {timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - a relay must never take verification down
            text, reply.retry_after = _describe(exc)
            fail(text)
        finally:
            self.load -= 1
            if (
                self.subscriptions.pop(subid, None) is not None
                and ws is not None
                and self._ws is ws
            ):
                self._spawn(
                    _say_close(ws, subid)
                )  # given up on (timeout, cancelled): free it at the relay
        if reply.error and reply.notices:
            reply.error += f" (notice: {reply.notices[-1]})"
        return reply

    async def aclose(self) -> None:
        self._closed = True
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=CLOSE_TIMEOUT + 1)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a background task's exception as seen (its callers got it already)."""
    if not task.cancelled():
        task.exception()


class RelayPool:
    """A verification run's connections to one relay: queries share a few WebSockets.

    Checking many proofs then costs one handshake per connection instead of
    one per proof. Each connection carries at most
    `SUBSCRIPTIONS_PER_CONNECTION` subscriptions at once; a query goes to the
    least busy connection, and connections open only when used.
    """

    def __init__(
        self, url: str, timeout: float, concurrency: int, *, auth: AuthSigner | None = None
    ) -> None:
        count = max(1, -(-concurrency // SUBSCRIPTIONS_PER_CONNECTION))
        self.url = url
        self._connections = [_Connection(url, timeout, auth) for _ in range(count)]

    async def query(self, filter_: dict[str, Any], timeout: float) -> QueryReply:
        connection = min(self._connections, key=lambda c: c.load)  # ties: the first, already open
        return await connection.query(filter_, timeout)

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self._connections), return_exceptions=True)


# ------------------------------------------------------------ a subscription kept open


class LiveSubscription:
    """A REQ left open after EOSE: the stored events, then new ones as the relay receives them.

    `start` connects and sends `["REQ", subid, filter_]` in a background task;
    every matching `EVENT`, before and after `EOSE`, is handed to `on_event`
    (awaited, so a slow consumer slows the reading instead of filling memory).
    Until `EOSE` the relay must say something within `timeout`: connecting
    and the first answer, then each next one (time spent waiting for
    `on_event` does not count, so many stored events and a slow consumer are
    no failure). After `EOSE` (`live` is set) the subscription stays open
    without a deadline until the relay closes it (`CLOSED`, or the
    connection ends) or `aclose`. Never
    raises for what a relay does: `error` says why it ended or never went
    live, and `ended` is set either way. `on_end` is called once when it ends.

    Used by the nostr transport (`kez-transport-nostr`), which keeps one per
    relay while a recipient listens for envelopes.
    """

    def __init__(
        self,
        url: str,
        filter_: dict[str, Any],
        on_event: Callable[[Any], Awaitable[None]],
        *,
        on_end: Callable[[LiveSubscription], None] | None = None,
        auth: AuthSigner | None = None,
    ) -> None:
        self.url = url
        self.auth = auth
        self.filter = filter_
        self.subid = "kez-" + secrets.token_hex(8)
        self.live = asyncio.Event()
        self.ended = asyncio.Event()
        self.error: str | None = None
        self.notices: list[str] = []
        self._on_event = on_event
        self._on_end = on_end
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self, timeout: float) -> None:
        """Open the subscription in the background (call once, inside a running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(timeout))
            self._task.add_done_callback(_retrieve)

    async def wait_live(self) -> bool:
        """Wait until the relay sent EOSE (True) or the subscription ended without it (False)."""
        live = asyncio.ensure_future(self.live.wait())
        ended = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait({live, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            live.cancel()
            ended.cancel()
        return self.live.is_set()

    async def _run(self, timeout: float) -> None:
        error = "closed the connection"
        try:
            async with asyncio.timeout(timeout) as deadline:
                async with _connect(self.url) as ws:
                    self._ws = ws
                    request = _dumps(["REQ", self.subid, self.filter])
                    authed = await _auth_first(ws, self.url, self.auth)
                    resent = False
                    await ws.send(request)
                    async for raw in ws:
                        message = _parse(raw)
                        verb = message[0]
                        challenge = _challenge(message)
                        if challenge is not None and self.auth is not None:
                            await _answer(ws, self.url, self.auth, challenge)
                            authed = True
                            if (
                                not resent and not self.live.is_set()
                            ):  # asked unauthenticated: again
                                resent = True
                                await ws.send(request)
                            continue
                        if len(message) < 2 or message[1] != self.subid:
                            if verb == "NOTICE":
                                self.notices.append(_item(message, 1))
                            continue  # AUTH challenges, OK, unknown verbs: not for a read
                        if verb == "EVENT" and len(message) >= 3:
                            if self.live.is_set():
                                await self._on_event(message[2])
                                continue
                            # Before EOSE the deadline is an idle timeout: each event
                            # restarts it, and waiting for the consumer does not count.
                            deadline.reschedule(None)
                            await self._on_event(message[2])
                            deadline.reschedule(asyncio.get_running_loop().time() + timeout)
                        elif verb == "EOSE" and not self.live.is_set():
                            deadline.reschedule(None)  # live: no deadline from now on
                            self.live.set()
                        elif verb == "CLOSED":
                            reason = _item(message, 2)
                            if self.auth is not None and not resent and _wants_auth(reason):
                                authed = authed or await _await_challenge(ws, self.url, self.auth)
                                if authed:
                                    resent = True
                                    await ws.send(request)
                                    continue
                            error = f"closed the subscription: {reason or 'no reason given'}"
                            break
        except TimeoutError:
            error = f"no answer within {timeout:g} s"
        except _Malformed as exc:
            error = f"sent a malformed message ({exc})"
        except asyncio.CancelledError:
            error = "closed by us"
            raise
        except Exception as exc:  # noqa: BLE001 - one relay's failure is reported, not raised
            error = _describe(exc)[0]
        finally:
            self._ws = None
            if self.error is None:
                self.error = "closed by us" if self._closing else error
                if self.notices and not self._closing:
                    self.error += f" (notice: {self.notices[-1]})"
            self.ended.set()
            if self._on_end is not None:
                self._on_end(self)

    async def aclose(self) -> None:
        """Say CLOSE to the relay (when still connected), close the connection, end the task."""
        self._closing = True
        ws = self._ws
        if ws is not None and self.live.is_set():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await _say_close(ws, self.subid)
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CLOSE_TIMEOUT + 1)
        elif task is None:
            self.error = self.error or "closed by us"
            self.ended.set()
