"""`NatsTransport`: envelopes published on, and read from, the subject `kez.inbox.<routing id>`.

Core NATS, no JetStream: the server keeps nothing, so an envelope reaches
the subscriptions live when it is published and nobody else. Senders that
need delivery to an offline recipient use the server's HTTP inbox too; the
replay store drops the copy that arrives twice.

- `send` connects (or reuses the run's connection when `ctx.scope` is set),
  publishes, flushes (the server's PONG after our PUB means it has the
  envelope and has checked our permission to publish there) and closes.
- `subscribe` is an async context manager on its own connection: entering
  subscribes and flushes, so the subscription is live on the server when it
  returns; the body iterates envelope bytes; leaving closes the connection,
  which ends the subscription on the server (envelopes received but not yet
  read are dropped).

This module stays cheap to import: nats-py is loaded by `.connection` and
by the methods that need its error classes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import attrs
from kez_core.errors import EnvelopeTooLarge, TransportError
from kez_core.messaging.envelope import MAX_ATTACHMENT_ENVELOPE_TEXT, check_envelope_size
from kez_core.protocols import ChannelContext, ChannelOption

from .config import OPTIONS, NatsSettings, settings, subject_for
from .connection import REACH_HINT, Connection, connect, settle

# Bounds of what one subscription buffers between the socket and its reader;
# past them nats-py drops envelopes (a "slow consumer") instead of growing.
# 16 MiB holds about 95 of the largest envelopes, or 11,000 of the smallest.
PENDING_MSGS_LIMIT = 4096
PENDING_BYTES_LIMIT = 16 * 1024 * 1024

T = TypeVar("T")

_REFUSED_HINT = (
    "the server's permissions (or its auth callout) do not allow this inbox for these "
    "credentials: check --nats-token / --nats-creds"
)


@attrs.frozen
class NatsTransport:
    """The `nats` transport (see the module docstring and the plugin README).

    `pending_msgs_limit` / `pending_bytes_limit` bound each subscription's
    buffer (tests make them small to provoke a flood).
    """

    name: str = "nats"
    options: tuple[ChannelOption, ...] = OPTIONS
    # the largest envelope of all (a 512 KiB bucket, file chunks): NATS's default max_payload
    # (1 MiB) carries it, so a 10 MiB file goes in 21 chunks instead of 81 (docs/spec.md §12)
    max_envelope: int = MAX_ATTACHMENT_ENVELOPE_TEXT
    pending_msgs_limit: int = PENDING_MSGS_LIMIT
    pending_bytes_limit: int = PENDING_BYTES_LIMIT

    async def send(self, routing_id: str, envelope: bytes, ctx: ChannelContext) -> None:
        """Publish one envelope to `kez.inbox.<routing_id>` and return once the server has it."""
        subject = subject_for(routing_id)
        data = check_envelope_size(bytes(envelope), self.max_envelope, "nats")
        config = settings(ctx)
        async with _connection(config, ctx) as conn:
            limit = int(conn.client.max_payload)
            if len(data) > limit:
                raise EnvelopeTooLarge(
                    f"envelope of {len(data)} bytes is larger than the NATS server's "
                    f"max_payload ({limit} bytes) at {config.shown_urls}",
                    hint=f"raise max_payload on the server to at least {self.max_envelope} "
                    "bytes, or send a smaller message",
                )
            await _confirmed(
                conn,
                subject,
                ctx.timeout,
                "envelope",
                "sending",
                lambda: conn.client.publish(subject, data),
            )

    def subscribe(
        self, routing_id: str, ctx: ChannelContext
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Envelopes for `routing_id` as they arrive (see the module docstring)."""
        return self._subscription(subject_for(routing_id), ctx)

    @contextlib.asynccontextmanager
    async def _subscription(self, subject: str, ctx: ChannelContext) -> AsyncIterator[NatsInbox]:
        config = settings(ctx)
        conn = await connect(config, ctx.timeout)
        inbox: NatsInbox | None = None
        try:
            sub = await _live_subscription(self, conn, subject, ctx.timeout)
            inbox = NatsInbox(sub, conn, subject)
            yield inbox
        finally:
            if inbox is not None:
                inbox.leave()
            await conn.close()


async def _live_subscription(
    transport: NatsTransport, conn: Connection, subject: str, timeout: float
) -> Any:
    """Subscribe and flush: when this returns the server routes `subject` to us."""
    return await _confirmed(
        conn,
        subject,
        timeout,
        "subscription",
        "subscribing",
        lambda: conn.client.subscribe(
            subject,
            pending_msgs_limit=transport.pending_msgs_limit,
            pending_bytes_limit=transport.pending_bytes_limit,
        ),
    )


async def _confirmed(
    conn: Connection,
    subject: str,
    timeout: float,
    what: str,
    doing: str,
    command: Callable[[], Awaitable[T]],
) -> T:
    """Run one command on `subject` and return once the server has processed it (`settle`).

    A timeout, a broken connection and a permission refusal for `subject`
    each become a TransportError naming `what` (the envelope, the subscription).
    """
    config = conn.settings
    try:
        async with asyncio.timeout(timeout):
            result = await command()
            await settle(conn.client, timeout)
    except TimeoutError as exc:
        raise TransportError(
            f"the NATS server at {config.shown_urls} did not confirm the {what} "
            f"within {timeout:g} s",
            hint=REACH_HINT,
        ) from exc
    except Exception as exc:  # noqa: BLE001 - the boundary: nothing of nats-py escapes
        raise _lost(config, conn, exc, doing) from exc
    refusal = conn.refusal(subject)
    if refusal is not None:
        raise TransportError(
            f"the NATS server at {config.shown_urls} refused the {what}: {refusal}",
            hint=_REFUSED_HINT,
        )
    return result


class NatsInbox:
    """The async iterator `subscribe` yields: envelope bytes, in the order the server sent them.

    Iteration ends cleanly when the `async with` block is left (from another
    task too). When the connection is lost (the server stopped, the network
    broke, two pings went unanswered) it raises TransportError: core NATS
    does not keep what was published meanwhile, so the caller should know,
    subscribe again, and catch up from the server's HTTP inbox.

    `dropped` counts envelopes nats-py threw away because the reader fell
    behind by more than the transport's pending limits.
    """

    def __init__(self, subscription: Any, conn: Connection, subject: str) -> None:
        self._sub = subscription
        self._conn = conn
        self._subject = subject
        self._leaving = False

    @property
    def dropped(self) -> int:
        return self._conn.dropped

    def __aiter__(self) -> NatsInbox:
        return self

    async def __anext__(self) -> bytes:
        from nats import errors as nats_errors

        if self._leaving:
            raise StopAsyncIteration
        try:
            msg = await self._sub.next_msg(timeout=None)
        except nats_errors.ConnectionClosedError:
            if self._leaving:
                raise StopAsyncIteration from None
            raise _lost(self._conn.settings, self._conn, None, "receiving") from None
        except asyncio.CancelledError:
            if self._leaving:
                raise StopAsyncIteration from None
            raise
        return bytes(msg.data)

    def leave(self) -> None:
        """Mark the block as left: the iteration ends instead of raising when the connection closes.

        The subscription is removed by closing its connection (the server
        forgets a closed connection's subscriptions). An UNSUB first would be
        worse: nats-py forgets the subscription on UNSUB, so closing would no
        longer wake a reader blocked in another task.
        """
        self._leaving = True


def _lost(
    config: NatsSettings, conn: Connection, exc: BaseException | None, doing: str
) -> TransportError:
    """The TransportError for a connection that broke (or was refused) while `doing` something."""
    cause = exc if exc is not None else conn.client.last_error
    reason = str(cause).removeprefix("nats: ").strip("'") if cause is not None else ""
    if not reason or reason == "connection closed":
        reason = "the server closed the connection"
    return TransportError(
        f"lost the connection to the NATS server at {config.shown_urls} while {doing}: {reason}",
        hint="envelopes published while disconnected are not kept by NATS: subscribe again "
        "and read the server's inbox for what was missed; " + REACH_HINT,
    )


@contextlib.asynccontextmanager
async def _connection(config: NatsSettings, ctx: ChannelContext) -> AsyncIterator[Connection]:
    """A connection for one send: the run's shared one when `ctx.scope` is set, else our own."""
    scope = ctx.scope
    if scope is None or scope.closed:
        conn = await connect(config, ctx.timeout)
        try:
            yield conn
        finally:
            await conn.close()
        return
    shared = scope.get(config.key, lambda: _new_shared(scope, config))
    yield await shared.get(ctx.timeout)


def _new_shared(scope: Any, config: NatsSettings) -> _SharedConnection:
    shared = _SharedConnection(config)
    scope.on_close(shared.aclose)
    return shared


class _SharedConnection:
    """One connection per run and settings, opened on first use and again after it broke."""

    def __init__(self, config: NatsSettings) -> None:
        self._config = config
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()

    async def get(self, timeout: float) -> Connection:
        async with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = await connect(self._config, timeout)
            return self._conn

    async def aclose(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
