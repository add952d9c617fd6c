"""The nostr transport through a relay that requires NIP-42 AUTH (a real nostr-relay)."""

from __future__ import annotations

import asyncio

import pytest
from kez_channel_nostr.testing import running_relay
from kez_transport_nostr.transport import NostrTransport
from nostr_transport_helpers import ctx, envelope, rid, take


@pytest.fixture(scope="module")
def auth_relay():
    with running_relay(auth_required=True, max_event_size=64 * 1024) as relay:
        yield relay


def test_send_and_listen_authenticate_with_one_time_keys(auth_relay):
    transport, route = NostrTransport(), rid()
    stored, live = envelope(), envelope(2000)
    context = ctx(auth_relay.url, timeout=10)

    async def run():
        await transport.send(route, stored, context)  # before anyone listens: kept by the relay
        async with transport.subscribe(route, context) as inbox:
            first = await take(inbox, 10)
            await transport.send(route, live, context)
            second = await take(inbox, 10)
        return first, second

    assert asyncio.run(run()) == (stored, live)
