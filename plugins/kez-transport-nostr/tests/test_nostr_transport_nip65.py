"""NIP-65: a recipient's relay list (kind 10002) decides where envelopes go; real nostr-relays."""

from __future__ import annotations

import asyncio

import attrs
import pytest
from kez_channel_nostr.account import fetch_metadata, fetch_relay_list, public_key
from kez_channel_nostr.testing import running_relay
from kez_core.builtins.bip340 import BIP340
from kez_transport_nostr.nip65 import publish_account, recipient_relays
from kez_transport_nostr.transport import NostrTransport
from nostr_transport_helpers import ctx, envelope, rid, take


@pytest.fixture(scope="module")
def inbox_relay():
    """The recipient's own relay, which the sender is not configured with."""
    with running_relay(max_event_size=64 * 1024) as relay:
        yield relay


def test_a_sender_finds_the_recipients_read_relay_and_reaches_it(second_relay, inbox_relay):
    transport, route = NostrTransport(), rid()
    recipient = BIP340.generate_secret()
    listener = ctx(inbox_relay.url, timeout=10)
    sender = ctx(second_relay.url, timeout=10)

    async def run():
        # the recipient announces, on the public relay, that it reads at its own relay
        announced = await publish_account(
            recipient,
            attrs.evolve(listener, options={"nostr_transport_relays": (inbox_relay.url,)}),
            name="bob",
        )
        assert all(r.accepted for r in announced["relay_list"] + announced["metadata"])
        # ...and on the relay the sender uses, as NIP-65 asks (spread the list)
        from kez_channel_nostr.account import publish, relay_list_event

        [reply] = await publish(
            [second_relay.url], relay_list_event(recipient, read=[inbox_relay.url]), 10, recipient
        )
        assert reply.accepted
        urls = await recipient_relays(
            ["ed25519:" + "00" * 32, "nostr:" + public_key(recipient)], sender
        )
        assert urls == [inbox_relay.url, second_relay.url]
        async with transport.subscribe(route, listener) as inbox:
            await transport.send(
                route,
                envelope(),
                attrs.evolve(
                    sender, options={**sender.options, "nostr_transport_relays": tuple(urls)}
                ),
            )
            return await take(inbox, 10), await fetch_metadata(
                [inbox_relay.url], public_key(recipient), 10
            )

    got, profile = asyncio.run(run())
    assert got.startswith(b"kez:e1:") and profile == {"name": "bob"}


def test_without_a_list_the_senders_own_relays_are_used(second_relay):
    urls = asyncio.run(
        recipient_relays(["nostr:" + public_key(BIP340.generate_secret())], ctx(second_relay.url))
    )
    assert urls == [second_relay.url]
    assert asyncio.run(recipient_relays([], ctx(second_relay.url))) == [second_relay.url]


def test_the_published_list_reads_and_writes_at_our_relays(second_relay):
    secret = BIP340.generate_secret()

    async def run():
        await publish_account(secret, ctx(second_relay.url, timeout=10))
        return await fetch_relay_list([second_relay.url], public_key(secret), 10)

    found = asyncio.run(run())
    assert found.read == (second_relay.url,) and found.write == (second_relay.url,)
