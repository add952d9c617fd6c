"""Interoperability with an independent nostr client: rust-nostr's Python bindings (nostr-sdk).

Events written by nostr-sdk are read by our channel, and events our channel
publishes are fetched and verified by nostr-sdk, both through the real relay.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from nostr_helpers import NostrAccount, checks, claim_text, fetch, publish

from kez_core.keys import Signer
from kez_core.nostr_event import verify_event
from kez_core.status import Status

nostr_sdk = pytest.importorskip("nostr_sdk")


async def _with_client(relay_url: str, work):
    client = nostr_sdk.Client()
    await client.add_relay(nostr_sdk.RelayUrl.parse(relay_url))
    await client.connect()
    try:
        return await work(client)
    finally:
        await client.shutdown()


def test_event_published_by_nostr_sdk_is_read_by_the_channel(nostr_server):
    identity = Signer.generate("ed25519")
    keys = nostr_sdk.Keys.generate()
    account = NostrAccount(bytes.fromhex(keys.secret_key().to_hex()))
    assert keys.public_key().to_hex() == account.pubkey
    text = claim_text(identity, account)

    async def send(client):
        builder = nostr_sdk.EventBuilder(nostr_sdk.Kind(30078), text).tags(
            [nostr_sdk.Tag.identifier("kez")]
        )
        event = builder.finalize(keys)
        output = await client.send_event(event)
        assert [str(url) for url in output.success] == [nostr_server.relay_url], output.failed
        return json.loads(event.as_json())

    sent = asyncio.run(_with_client(nostr_server.relay_url, send))
    assert sent["tags"] == [["d", "kez"]] and verify_event(sent)

    outcome = fetch(account.pubkey, nostr_server.ctx_options())
    assert [c.source for c in outcome.candidates] == [f"{nostr_server.url} event {sent['id']}"]
    [check] = checks(outcome)
    assert check.status is Status.VALID and check.primary == identity.key_id


def test_event_published_by_the_channel_is_fetched_and_verified_by_nostr_sdk(nostr_server):
    identity = Signer.generate("nostr")
    account = NostrAccount.new()
    text = claim_text(identity, account)
    keys = nostr_sdk.Keys.parse(account.secret.hex())
    assert keys.public_key().to_hex() == account.pubkey
    result = publish(
        account.pubkey, text, {**nostr_server.ctx_options(), "nostr_secret": account.secret.hex()}
    )
    assert result.location == nostr_server.url

    async def read(client):
        wanted = (
            nostr_sdk.Filter()
            .author(keys.public_key())
            .kind(nostr_sdk.Kind(30078))
            .identifier("kez")
        )
        return await client.fetch_events(nostr_sdk.ReqTarget.auto([wanted]), timedelta(seconds=10))

    events = asyncio.run(_with_client(nostr_server.relay_url, read))
    assert len(events) == 1
    event = events[0]
    assert event.verify()  # id and BIP-340 signature, checked by rust-nostr
    assert event.kind().as_u16() == 30078
    assert event.content() == text
    assert event.author().to_hex() == account.pubkey
    assert [tag.to_vec() for tag in event.tags()] == [["d", "kez"]]
    assert event.id().to_hex() in result.detail
