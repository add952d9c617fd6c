"""NIP-65 when sending over nostr (issue 12 §7): the recipient's kind-10002 list decides where
envelopes go, and `kez message listen` publishes the listener's own list. Real nostr-relays."""

from __future__ import annotations

import asyncio
import time

import pytest
from kez_channel_nostr.account import fetch_relay_list, publish, public_key, relay_list_event
from kez_channel_nostr.testing import running_relay
from kez_core.keystore import Keystore
from kez_core.registry import default_registry
from message_cli_helpers import kez_json, make_people, person, send_args, start_listen


@pytest.fixture(scope="module")
def relays():
    """Relay A (where Alice sends and where Bob's list is found) and relay B (Bob's inbox).

    One pair for the module: each test's Bob is a new key, so no test finds another's list."""
    with running_relay(max_event_size=64 * 1024) as a, running_relay(max_event_size=64 * 1024) as b:
        yield a.url, b.url


@pytest.fixture
def people(capsys, tmp_path, monkeypatch):
    """Alice (Ed25519) and Bob, whose primary is a nostr key; chains exchanged."""
    monkeypatch.setenv("KEZ_PASSPHRASE", "")
    return make_people(capsys, tmp_path, ["alice", "bob"], algs={"bob": "nostr"})


def test_alice_sends_to_the_read_relay_of_bobs_list(capsys, people, relays):
    relay_a, relay_b = relays
    alice, bob = people["alice"], people["bob"]
    with person(bob["home"]):
        secret = Keystore(registry=default_registry()).signer("bob", lambda: None).secret
    assert bob["id"] == "nostr:" + public_key(secret)
    # Bob's list, spread to the relay Alice knows, names relay B only
    [reply] = asyncio.run(publish([relay_a], relay_list_event(secret, read=[relay_b]), 10, secret))
    assert reply.accepted
    lines = start_listen(bob["home"], "--transport-relay", relay_b, "--count", "1", "--wait", "60")
    try:
        assert lines.event(lambda e: e["event"] == "up")["via"] == "nostr"
        sent = kez_json(
            capsys,
            alice["home"],
            *send_args(bob["chain"], "via B", "nostr"),
            "--transport-relay",
            relay_a,
        )
        assert [s["sent"] for s in sent] == [True]
        message = lines.event(lambda e: e["event"] == "message")
        assert message["body"]["text"] == "via B" and message["from"] == alice["id"]
        assert lines.proc.wait(30) == 0, lines.stderr()
    finally:
        lines.proc.kill()
    time.sleep(0.2)
    # listening published Bob's own list at the relay he listens on
    assert "published our NIP-65 relay list" in lines.stderr()
    found = asyncio.run(fetch_relay_list([relay_b], public_key(secret), 10))
    assert found is not None and found.read == (relay_b,)


def test_without_a_list_alice_sends_to_her_own_relays(capsys, people, relays):
    relay_a, _ = relays
    alice, bob = people["alice"], people["bob"]
    sent = kez_json(
        capsys,
        alice["home"],
        *send_args(bob["chain"], "x", "nostr"),
        "--transport-relay",
        relay_a,
    )
    assert [s["sent"] for s in sent] == [True]
