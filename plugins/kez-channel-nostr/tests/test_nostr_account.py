"""kind 0 and NIP-65 kind 10002: building, reading, and a round trip through a real relay."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kez_core.builtins.bip340 import BIP340
from kez_core.nostr_event import sign_event, verify_event

from kez_channel_nostr.account import (
    MAX_LIST_RELAYS,
    METADATA_KIND,
    RELAY_LIST_KIND,
    RelayList,
    fetch_metadata,
    fetch_relay_list,
    metadata_event,
    newest,
    parse_metadata,
    parse_relay_list,
    public_key,
    publish,
    relay_list_event,
)
from kez_channel_nostr.testing import running_relay

SECRET = bytes.fromhex("11" * 32)


def test_a_relay_list_marks_read_only_and_write_only_relays():
    event = relay_list_event(
        SECRET, read=["wss://a", "wss://both"], write=["wss://both", "wss://w"], created_at=5
    )
    assert (
        event["kind"] == RELAY_LIST_KIND == 10002 and event["content"] == "" and verify_event(event)
    )
    assert event["tags"] == [
        ["r", "wss://a", "read"],
        ["r", "wss://both"],
        ["r", "wss://w", "write"],
    ]
    assert parse_relay_list(event) == RelayList(
        read=("wss://a", "wss://both"), write=("wss://both", "wss://w")
    )


def test_a_relay_list_refuses_bad_urls_and_long_lists():
    with pytest.raises(ValueError, match="ws:// or wss://"):
        relay_list_event(SECRET, read=["https://a"])
    with pytest.raises(ValueError, match="at most"):
        relay_list_event(SECRET, read=[f"wss://r{i}" for i in range(MAX_LIST_RELAYS + 1)])


def test_reading_a_relay_list_skips_what_is_not_a_relay_entry():
    tags = [
        ["r", "wss://ok"],
        ["r", "https://web"],
        ["r", "wss://x", "sideways"],
        ["p", "wss://p"],
        "junk",
        ["r"],
        ["r", 5],
        ["r", "wss://ok", "read"],
        ["r", " wss://w ", "write"],
    ]
    event = {"tags": tags}
    assert parse_relay_list(event) == RelayList(read=("wss://ok",), write=("wss://ok", "wss://w"))
    many = {"tags": [["r", f"wss://r{i}"] for i in range(100)]}
    assert len(parse_relay_list(many).read) == MAX_LIST_RELAYS


@given(
    st.recursive(
        st.none() | st.text() | st.integers(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_reading_never_raises_on_anything(value):
    parse_relay_list(value)
    parse_relay_list({"tags": value})
    parse_metadata(value)
    parse_metadata({"content": value if isinstance(value, str) else str(value)})


def test_kind_0_holds_name_and_about_as_a_json_object():
    event = metadata_event(SECRET, name="alice", about="KEZ identity ed25519:ab", created_at=7)
    assert event["kind"] == METADATA_KIND == 0 and verify_event(event)
    assert parse_metadata(event) == {"name": "alice", "about": "KEZ identity ed25519:ab"}
    assert parse_metadata(metadata_event(SECRET)) == {}
    assert parse_metadata({"content": "[1]"}) == {} and parse_metadata({"content": "{"}) == {}


def test_the_newest_valid_event_by_the_key_wins():
    other = bytes.fromhex("22" * 32)
    old = relay_list_event(SECRET, read=["wss://old"], created_at=100)
    new = relay_list_event(SECRET, read=["wss://new"], created_at=200)
    forged = {**relay_list_event(SECRET, read=["wss://forged"], created_at=300), "sig": "00" * 64}
    by_other = relay_list_event(other, read=["wss://other"], created_at=400)
    wrong_kind = sign_event(SECRET, 1, "", [], 500)
    got = newest(
        [old, forged, new, by_other, wrong_kind, "junk"], public_key(SECRET), RELAY_LIST_KIND
    )
    assert got == new
    twin = relay_list_event(SECRET, read=["wss://twin"], created_at=200)
    assert newest([new, twin], public_key(SECRET), RELAY_LIST_KIND)["id"] == min(
        new["id"], twin["id"]
    )


@pytest.fixture(scope="module")
def relay_url():
    with running_relay() as relay:
        yield relay.url


@pytest.fixture(scope="module")
def auth_relay_url():
    with running_relay(auth_required=True) as relay:
        yield relay.url


@pytest.mark.parametrize("which", ["open", "auth"])
def test_publish_then_read_both_events_from_a_real_relay(relay_url, auth_relay_url, which):
    url = relay_url if which == "open" else auth_relay_url
    secret = BIP340.generate_secret()
    pubkey = public_key(secret)

    async def run():
        first = relay_list_event(
            secret, read=["wss://inbox.example"], created_at=int(time.time()) - 60
        )
        second = relay_list_event(
            secret, read=["wss://inbox2.example"], write=["wss://out.example"]
        )
        profile = metadata_event(secret, name="bob")
        for event in (first, second, profile):
            [reply] = await publish([url], event, 10, secret)
            assert reply.accepted, reply.message
        return (
            await fetch_relay_list([url], pubkey, 10),
            await fetch_metadata([url], pubkey, 10),
            await fetch_relay_list([url], public_key(BIP340.generate_secret()), 10),
        )

    relays, profile, nobody = asyncio.run(run())
    assert relays == RelayList(read=("wss://inbox2.example",), write=("wss://out.example",))
    assert profile == {"name": "bob"}
    assert nobody is None
