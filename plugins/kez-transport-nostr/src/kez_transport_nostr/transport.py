"""The `nostr` transport: envelopes as nostr events signed by one-time keys.

`send` signs one event per envelope with a key generated for it (see
`events`) and hands it to every configured relay at once; `subscribe`
keeps a `REQ` open on every relay and yields the checked contents.

This module stays cheap to import (`kez --help` loads the plugin's entry
point): `websockets` and the secp256k1 code are imported inside `send` and
`subscribe` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import attrs
from kez_core.errors import TransportError
from kez_core.messaging.envelope import check_envelope_size, check_routing_id
from kez_core.messaging.errors import EnvelopeError
from kez_core.protocols import ChannelContext, ChannelOption

from .options import RELAY_HINT, RELAYS_OPTION, SINCE_OPTION, lookback, relay_urls
from .throttle import RATE_OPTION, bucket_for, send_rate

if TYPE_CHECKING:
    from kez_channel_nostr.relay import PublishReply

    from .inbox import RelayInbox

MAX_ENVELOPE = 32 * 1024  # DESIGN §6: a nostr event's content is at most 32 KiB
# Once one relay took the event, the others get this much longer (within the
# timeout) to take it too; then `send` returns rather than wait for a silent one.
SEND_GRACE = 2.0
# A subscription opened again asks from this long before the last one ended (senders' clocks
# may be off by up to 5 minutes, spec §12 "Replay"), not from the whole lookback.
RESUME_MARGIN = 600.0


def envelope_text(envelope: bytes | str, limit: int = MAX_ENVELOPE) -> str:
    """The envelope as event content; EnvelopeTooLarge over `limit`, EnvelopeError if not ASCII."""
    if isinstance(envelope, str):
        raw = envelope.encode("utf-8", "surrogatepass")
    elif isinstance(envelope, bytes | bytearray | memoryview):
        raw = bytes(envelope)
    else:
        raise EnvelopeError(f"an envelope is bytes, not {type(envelope).__name__}")
    check_envelope_size(
        raw,
        limit,
        "nostr",
        hint="send a smaller message (files go in chunks), or use another transport",
    )
    if not raw.isascii():
        raise EnvelopeError("an envelope is ASCII text (kez:e1:…); this one is not")
    return raw.decode("ascii")


def _failure(reply: PublishReply) -> str:
    """`<url> refused it: <reason>` / `<url> timed out (…)` / `<url> unreachable (…)`."""
    if reply.answered:
        return f"{reply.url} refused it: {reply.message}"
    if reply.message.startswith("no OK within"):
        return f"{reply.url} timed out ({reply.message})"
    return f"{reply.url} unreachable ({reply.message})"


async def _throttled_send(
    url: str, event: dict[str, Any], timeout: float, rate: float
) -> PublishReply:
    """`send_event` once this relay's bucket has a token (the wait counts against `timeout`)."""
    from kez_channel_nostr.relay import PublishReply, send_event

    try:
        async with asyncio.timeout(timeout):
            waited = await bucket_for(url, rate).take()
    except TimeoutError:
        return PublishReply(
            url, message=f"no turn within {timeout:g} s (sending at most {rate:g} events/s)"
        )
    from kez_channel_nostr.nip42 import one_time_signer

    # NIP-42 with a key made for this connection alone, like the event's own key:
    # authenticating must not tie one sender's envelopes together.
    remaining = max(0.001, timeout - waited) if waited else timeout
    return await send_event(url, event, remaining, auth=one_time_signer())


async def _publish(
    urls: list[str], event: dict[str, Any], timeout: float, rate: float = 5.0
) -> list[PublishReply]:
    """Send `event` to every relay at once; stop waiting `SEND_GRACE` s after the first OK true."""
    from kez_channel_nostr.relay import PublishReply

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    tasks = {asyncio.ensure_future(_throttled_send(url, event, timeout, rate)): url for url in urls}
    pending = set(tasks)
    accepted = False
    try:
        while pending and not accepted:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            accepted = any(task.result().accepted for task in done)
        if pending:
            grace = max(0.0, min(SEND_GRACE, deadline - loop.time()))
            _, pending = await asyncio.wait(pending, timeout=grace)
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
    return [
        task.result()
        if not task.cancelled()
        else PublishReply(tasks[task], message="no OK before another relay had taken it")
        for task in tasks
    ]


@attrs.frozen
class NostrTransport:
    """Message transport `nostr`: kind-4243 events tagged `["p", <routing id>]`."""

    name: str = "nostr"
    options: tuple[ChannelOption, ...] = (RELAYS_OPTION, SINCE_OPTION, RATE_OPTION)
    max_envelope: int = MAX_ENVELOPE

    async def send(self, routing_id: str, envelope: bytes, ctx: ChannelContext) -> None:
        """Publish the envelope to every relay; TransportError unless at least one took it."""
        check_routing_id(routing_id)
        content = envelope_text(envelope, self.max_envelope)
        urls = relay_urls(ctx)
        rate = send_rate(ctx)
        from .events import envelope_event

        event = envelope_event(routing_id, content)
        replies = await _publish(urls, event, ctx.timeout, rate)
        if any(reply.accepted for reply in replies):
            return
        raise TransportError(
            f"no nostr relay took the envelope for routing id {routing_id}: "
            + "; ".join(_failure(reply) for reply in replies),
            hint=f"retry later, or add relays that accept kind-4243 events; {RELAY_HINT}",
        )

    async def recipient_options(self, recipient: Any, ctx: ChannelContext) -> dict[str, Any]:
        """Where to send to this recipient (a `ChainState`): NIP-65, see `nip65.recipient_options`."""
        from .nip65 import recipient_options

        return await recipient_options(recipient, ctx)

    async def announce(self, ctx: ChannelContext) -> str | None:
        """Publish our kind-10002 relay list (the relays we listen on) and a kind 0, signed by the
        identity's key when it is a nostr key (`ctx.options["signer"]`); a line saying so, or None."""
        signer = ctx.options.get("signer")
        if signer is None or not str(getattr(signer, "key_id", "")).startswith("nostr:"):
            return None
        from .nip65 import publish_account

        replies = await publish_account(signer.secret, ctx)
        took = [r.url for r in replies["relay_list"] if r.accepted]
        if not took:
            raise TransportError(
                "no relay took our NIP-65 relay list: "
                + "; ".join(_failure(r) for r in replies["relay_list"]),
                hint="senders then use their own relays only; " + RELAY_HINT,
            )
        return f"published our NIP-65 relay list (kind 10002) on {len(took)} relay(s)"

    @contextlib.asynccontextmanager
    async def subscribe(self, routing_id: str, ctx: ChannelContext) -> AsyncIterator[RelayInbox]:
        """Live once entered (at least one relay sent EOSE); yields a `RelayInbox` of envelopes.

        Asks each relay for kind-4243 events with `#p` = the routing id since
        now minus the lookback (`--transport-since`, 48 h), so envelopes sent
        while the recipient was away arrive too. A listener subscribing again
        after a loss passes `ctx.options["resume_after"]` (unix time the last
        subscription ended): then it asks only from `RESUME_MARGIN` before that
        (never before the lookback), the catch-up without the lookback's repeats.
        """
        check_routing_id(routing_id)
        urls = relay_urls(ctx)
        since = max(0, int(time.time() - lookback(ctx).total_seconds()))
        left = ctx.options.get("resume_after")
        if isinstance(left, int | float) and not isinstance(
            left, bool
        ):  # a listener subscribing again
            since = max(since, int(left - RESUME_MARGIN))
        from .inbox import RelayInbox

        inbox = RelayInbox(urls, routing_id, since, ctx.timeout)
        try:
            await inbox.open()
            yield inbox
        finally:
            await inbox.aclose()
