"""Sizes and floods: the server's max_payload, and a subscription whose reader falls behind."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from kez_core.errors import EnvelopeTooLarge
from kez_core.messaging.envelope import MAX_ATTACHMENT_ENVELOPE_TEXT
from kez_core.protocols import ChannelContext
from kez_core.testing import TransportContract
from kez_transport_nats.transport import NatsTransport
from nats_helpers import SMALL_MAX_PAYLOAD


def test_max_envelope_is_the_largest_valid_envelope():
    assert (
        NatsTransport().max_envelope == MAX_ATTACHMENT_ENVELOPE_TEXT < 1024 * 1024
    )  # NATS's default max_payload


def test_a_server_max_payload_below_the_envelope_is_envelope_too_large(nats_small_server):
    transport, routing_id = NatsTransport(), secrets.token_hex(32)
    ctx = ChannelContext(options=nats_small_server.ctx_options(), timeout=5)
    fits = TransportContract.envelope(SMALL_MAX_PAYLOAD)
    too_big = TransportContract.envelope(SMALL_MAX_PAYLOAD + 1)

    async def run() -> bytes:
        async with transport.subscribe(routing_id, ctx) as inbox:
            with pytest.raises(EnvelopeTooLarge) as refused:
                await transport.send(routing_id, too_big, ctx)
            assert f"max_payload ({SMALL_MAX_PAYLOAD} bytes)" in refused.value.message
            assert str(MAX_ATTACHMENT_ENVELOPE_TEXT) in refused.value.hint
            await transport.send(routing_id, fits, ctx)  # the connection is still usable
            return await asyncio.wait_for(anext(inbox), 5)

    assert asyncio.run(run()) == fits


def test_a_flood_is_bounded_by_the_pending_limits(nats_server):
    """A reader that does not read: nats-py drops past the limits and counts; reading then works."""
    transport = NatsTransport(pending_msgs_limit=8, pending_bytes_limit=1 << 20)
    routing_id = secrets.token_hex(32)
    ctx = ChannelContext(options=nats_server.ctx_options(), timeout=5)
    envelopes = [TransportContract.envelope(1500 + i) for i in range(40)]

    later = TransportContract.envelope(1400)

    async def run() -> tuple[int, list[bytes]]:
        async with transport.subscribe(routing_id, ctx) as inbox:
            for envelope in envelopes:
                await transport.send(routing_id, envelope, ctx)

            async def until_dropped() -> None:
                while inbox.dropped < len(envelopes) - 8:
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(until_dropped(), 5)
            got = [await asyncio.wait_for(anext(inbox), 5) for _ in range(8)]
            await transport.send(routing_id, later, ctx)
            got.append(await asyncio.wait_for(anext(inbox), 5))
            return inbox.dropped, got

    dropped, got = asyncio.run(run())
    assert dropped == len(envelopes) - 8
    assert got[:8] == envelopes[:8]  # the first ones were kept, in order
    assert got[8] == later
