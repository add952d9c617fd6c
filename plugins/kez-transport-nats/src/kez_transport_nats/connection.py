"""Opening and closing one nats-py connection, in bounded time, with failures as TransportError.

nats-py's defaults suit a long-running service (60 reconnect attempts per
server, two seconds apart, errors logged with tracebacks). A `kez` command
wants the opposite: try each configured server (twice, 0.1 s apart: nats-py
has no "once"), give up when `ctx.timeout` is spent, never reconnect behind
the caller's back, and report what went wrong in one line. So every
connection here is made with `allow_reconnect=False`, a small
`max_reconnect_attempts`, an error callback that records instead of logging
tracebacks, and one deadline around the whole handshake.

nats-py is imported inside `connect` only: importing this module is cheap.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

import attrs
from kez_core.errors import TransportError

from .config import NatsSettings

log = logging.getLogger("kez_transport_nats")

RETRY_WAIT = 0.1  # seconds between the two tries of one server
PING_INTERVAL = 30  # seconds; two unanswered pings close a connection whose server vanished
ERRORS_KEPT = 32
CLOSE_TIMEOUT = 2.0  # closing flushes what is buffered; a dead server must not hold us

AUTH_HINT = (
    "check the token (--nats-token / KEZ_NATS_TOKEN) or the credentials file "
    "(--nats-creds / KEZ_NATS_CREDS) for this server; a server whose auth callout is "
    "kez-server admits identities with a handle there (kez handle register) whose "
    "chain it holds (kez sigchain publish)"
)
REACH_HINT = (
    "check that a NATS server runs there, or pass --nats-url nats://HOST:PORT "
    "(repeatable; or KEZ_NATS_URL)"
)


@attrs.define(eq=False)
class Connection:
    """An open nats-py client and the asynchronous errors its server reported.

    A NATS server answers a refused publish or subscription (permissions) with
    an asynchronous `-ERR`, not on the command itself; nats-py hands that to
    the error callback. Keeping them here lets `send` and `subscribe` turn
    such a refusal into a TransportError after their flush.
    """

    client: Any
    settings: NatsSettings
    # The latest few only: a flood of slow-consumer drops must not grow a list.
    errors: collections.deque[Exception] = attrs.field(
        factory=lambda: collections.deque(maxlen=ERRORS_KEPT)
    )
    dropped: int = 0  # envelopes nats-py threw away: a subscription's reader fell behind

    @property
    def closed(self) -> bool:
        return bool(self.client.is_closed)

    def refusal(self, subject: str) -> str | None:
        """The server's permissions error for `subject`, if it sent one."""
        for exc in self.errors:
            text = str(exc)
            if "permissions violation" in text.lower() and subject in text:
                return text.removeprefix("nats: ").strip("'")
        return None

    async def close(self) -> None:
        """Close, flushing what is buffered; never raises (a broken connection is closed enough)."""
        if self.closed:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.client.close()
        except Exception as exc:  # noqa: BLE001 - closing must not turn success into failure
            log.debug("closing the NATS connection failed: %r", exc)


async def connect(settings: NatsSettings, timeout: float) -> Connection:
    """A connection to the first configured server that accepts us, within `timeout` seconds.

    Raises TransportError (unreachable, refused authorization, timed out,
    anything nats-py raises).
    """
    from nats import errors as nats_errors
    from nats.aio.client import Client

    conn = Connection(client=Client(), settings=settings)

    async def on_error(exc: Exception) -> None:
        if isinstance(exc, nats_errors.SlowConsumerError):
            if not conn.dropped:
                log.warning(
                    "NATS: a subscription's reader fell behind; envelopes are being dropped"
                )
            conn.dropped += 1
            return
        conn.errors.append(exc)
        log.debug("NATS (%s): %s", settings.shown_urls, exc)

    options: dict[str, Any] = {
        "servers": list(settings.urls),
        "name": "kez",
        "error_cb": on_error,
        "allow_reconnect": False,
        "max_reconnect_attempts": 1,
        "reconnect_time_wait": RETRY_WAIT,
        "connect_timeout": timeout,
        "ping_interval": PING_INTERVAL,
        "max_outstanding_pings": 2,
    }
    if settings.token:
        options["token"] = settings.token
    if settings.creds is not None:
        options["user_credentials"] = str(settings.creds)
    elif settings.signer is not None and not settings.token:
        # The identity's key, for a server whose auth callout is kez-server. nats-py
        # sends it only when the server asks (a nonce: nkey users are configured).
        from .auth import ClientAuth

        auth = ClientAuth(settings.signer, settings.identity or settings.signer.key_id)
        auth.apply(conn.client)
        options.update(auth.connect_options())

    where = settings.shown_urls
    try:
        async with asyncio.timeout(timeout):
            await conn.client.connect(**options)
    except TimeoutError as exc:
        await conn.close()
        raise TransportError(
            f"no NATS server at {where} answered within {timeout:g} s", hint=REACH_HINT
        ) from exc
    except nats_errors.NoServersError as exc:
        await conn.close()
        last = _last_reason(conn.errors)
        raise TransportError(
            f"could not connect to a NATS server at {where}" + (f": {last}" if last else ""),
            hint=REACH_HINT,
        ) from exc
    except Exception as exc:  # noqa: BLE001 - the boundary: nothing of nats-py escapes
        await conn.close()
        raise connect_error(where, exc) from exc
    return conn


async def settle(client: Any, timeout: float) -> None:
    """Return once the server has processed every command written so far (our SUB, our PUB).

    `Client.flush()` alone does not promise that in nats-py 2.x: it writes its
    PING straight to the socket, ahead of commands still queued for the
    client's flusher task, so the PONG can come back before the server saw a
    SUB or PUB made just before (the subscription would not be live yet, a
    refusal would arrive after we returned). The first round trip lets the
    flusher hand the queue to the socket; the second PING goes after it.
    """
    await client.flush(timeout=timeout)
    await client.flush(timeout=timeout)


def connect_error(where: str, exc: BaseException) -> TransportError:
    """The TransportError for a failed handshake (authorization named as such)."""
    text = str(exc).removeprefix("nats: ").strip("'") or type(exc).__name__
    lowered = text.lower()
    if "authorization" in lowered or "authentication" in lowered:
        return TransportError(
            f"the NATS server at {where} refused authorization ({text})", hint=AUTH_HINT
        )
    if isinstance(exc, OSError):
        return TransportError(
            f"could not connect to a NATS server at {where}: {text}", hint=REACH_HINT
        )
    return TransportError(
        f"the NATS server at {where} failed the handshake: {text}", hint=REACH_HINT
    )


def _last_reason(errors: collections.deque[Exception]) -> str:
    for exc in reversed(errors):
        text = str(exc).removeprefix("nats: ").strip("'") or type(exc).__name__
        if text:
            return text
    return ""
