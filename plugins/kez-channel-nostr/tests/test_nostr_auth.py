"""NIP-42: a real nostr-relay that requires AUTH, and the relay client answering its challenge."""

from __future__ import annotations

import asyncio

import pytest
from kez_core.builtins.bip340 import BIP340
from kez_core.nostr_event import sign_event, verify_event

from kez_channel_nostr import relay
from kez_channel_nostr.nip42 import AUTH_KIND, auth_event, key_signer, one_time_signer
from kez_channel_nostr.testing import running_relay


@pytest.fixture(scope="module")
def auth_relay():
    with running_relay(auth_required=True) as server:
        yield server


def _note(content: str = "hello", kind: int = 1, tags=None) -> dict:
    return sign_event(BIP340.generate_secret(), kind, content, tags or [])


def test_the_auth_event_is_kind_22242_with_relay_and_challenge_tags():
    secret = BIP340.generate_secret()
    event = auth_event(secret, "wss://relay.example", "c0ffee", created_at=1_700_000_000)
    assert event["kind"] == AUTH_KIND == 22242 and event["content"] == ""
    assert event["tags"] == [["relay", "wss://relay.example"], ["challenge", "c0ffee"]]
    assert event["pubkey"] == BIP340.public_from_secret(secret).hex() and verify_event(event)
    assert key_signer(secret)("wss://r", "x")["pubkey"] == event["pubkey"]


def test_a_one_time_signer_uses_a_new_key_for_every_challenge():
    sign = one_time_signer()
    keys = {sign("wss://r", "c")["pubkey"] for _ in range(5)}
    assert len(keys) == 5


def test_without_a_signer_the_relay_refuses_to_store(auth_relay):
    reply = asyncio.run(relay.send_event(auth_relay.url, _note(), 5))
    assert not reply.accepted and "restricted" in reply.message


def test_a_signer_answers_the_challenge_and_the_event_is_stored(auth_relay):
    event = _note("stored after auth")
    sign = one_time_signer()

    async def run():
        sent = await relay.send_event(auth_relay.url, event, 10, auth=sign)
        # a second send to the same relay authenticates before sending
        again = await relay.send_event(auth_relay.url, _note("second"), 10, auth=sign)
        found = await relay.query(auth_relay.url, {"ids": [event["id"]]}, 10, auth=sign)
        return sent, again, found

    sent, again, found = asyncio.run(run())
    assert sent.accepted, sent.message
    assert again.accepted, again.message
    assert found.answered and found.error is None, found.error
    assert [e["id"] for e in found.events] == [event["id"]]


def test_a_read_without_a_signer_gets_no_events(auth_relay):
    reply = asyncio.run(relay.query(auth_relay.url, {"kinds": [1]}, 1.5))
    assert not reply.answered and reply.events == []
    assert "restricted" in (reply.error or "") or "no answer" in (reply.error or "")


def test_a_live_subscription_authenticates_and_gets_stored_and_new_events(auth_relay):
    tag = BIP340.generate_secret().hex()
    first = _note("before", tags=[["t", tag]])
    second = _note("after", tags=[["t", tag]])
    sign = one_time_signer()

    async def run():
        assert (await relay.send_event(auth_relay.url, first, 10, auth=sign)).accepted
        got: list[dict] = []
        arrived = asyncio.Event()

        async def on_event(event):
            got.append(event)
            if len(got) >= 2:
                arrived.set()

        sub = relay.LiveSubscription(
            auth_relay.url, {"kinds": [1], "#t": [tag]}, on_event, auth=sign
        )
        sub.start(10)
        try:
            assert await sub.wait_live(), sub.error
            assert (await relay.send_event(auth_relay.url, second, 10, auth=sign)).accepted
            await asyncio.wait_for(arrived.wait(), 10)
        finally:
            await sub.aclose()
        return got

    got = asyncio.run(run())
    assert [e["id"] for e in got] == [first["id"], second["id"]]


def test_a_pooled_query_authenticates(auth_relay):
    event = _note("pooled")
    sign = one_time_signer()

    async def run():
        assert (await relay.send_event(auth_relay.url, event, 10, auth=sign)).accepted
        pool = relay.RelayPool(auth_relay.url, 10, 4, auth=sign)
        try:
            return await asyncio.gather(*(pool.query({"ids": [event["id"]]}, 10) for _ in range(3)))
        finally:
            await pool.aclose()

    for reply in asyncio.run(run()):
        assert reply.answered, reply.error
        assert [e["id"] for e in reply.events] == [event["id"]]


@pytest.mark.parametrize("scoped", [False, True], ids=["lone fetch", "verification run"])
def test_the_channel_publishes_and_verifies_through_an_auth_relay(auth_relay, scoped, monkeypatch):
    import nostr_helpers
    from nostr_helpers import NostrAccount, checks, claim_text, fetch, publish

    from kez_core.keys import Signer
    from kez_core.status import Status

    monkeypatch.setattr(nostr_helpers, "SCOPED", scoped)  # a test helper's switch, not network code
    identity, account = Signer.generate("ed25519"), NostrAccount.new()
    options = {"nostr_relays": (auth_relay.url,), "nostr_secret": account.secret.hex()}
    result = publish(account.pubkey, claim_text(identity, account), options, timeout=10)
    assert "accepted by 1 of 1 relays" in result.detail
    outcome = fetch(account.pubkey, {"nostr_relays": (auth_relay.url,)}, timeout=10)
    assert [check.status for check in checks(outcome)] == [Status.VALID]
