"""`--nostr-relay`: an envelope sent over nostr to a registered identity's routing id pushes
that handle's browsers. A real nostr-relay, the real kez-server under uvicorn and a
`FakePushService`; the envelope goes out through the nostr transport's own `send`."""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx
import pytest
from kez_channel_nostr.testing import running_server as running_relay_server
from kez_core.messaging import InboxSecret, routing_id
from kez_core.protocols import ChannelContext
from kez_server.config import ConfigError, ServerSettings
from kez_server.testing import fake_push_service, running_server
from kez_server.vapid import load_or_create
from kez_transport_nostr.transport import NostrTransport
from nats_callout_helpers import ENVELOPE, Person
from test_server_push import SUBJECT, User, endpoint, wait_for


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """(kez-server watching the relay, the relay, the fake push service)."""
    vapid = tmp_path_factory.mktemp("vapid") / "vapid.pem"
    public = load_or_create(vapid).public_b64url
    with running_relay_server() as relay, fake_push_service(public, SUBJECT) as fake:
        with running_server(
            vapid_key=str(vapid),
            vapid_subject=SUBJECT,
            push_allow=[fake.url.split("://")[1]],
            nostr_relays=[relay.url],
        ) as server:
            yield server, relay, fake


def send(relay, route: str) -> None:
    ctx = ChannelContext(options={"nostr_transport_relays": (relay.url,)}, timeout=5)
    asyncio.run(NostrTransport().send(route, ENVELOPE, ctx))


def subscribed(server, fake, person: Person, name: str) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        user = User.__new__(User)
        user.http, user.signer, user.handle = http, person.primary, person.handle
        assert user.subscribe(endpoint(fake, name)).status_code == 201


def watched(server, route: str, timeout: float = 15) -> None:
    wait_for(
        lambda: route in server.app.state.kez.nostr.routes,
        "the listener to watch the route",
        timeout,
    )
    listener = server.app.state.kez.nostr
    wait_for(
        lambda: listener._subscriptions and all(s.live.is_set() for s in listener._subscriptions),
        "the relay subscriptions to go live",
        timeout,
    )


def test_a_nostr_send_to_a_registered_routing_id_pushes_its_browsers(home):
    server, relay, fake = home
    fake.records.clear()
    bob, carol = (
        Person((server, None)),
        Person((server, None)),
    )  # registered, chain with an inbox key
    name = secrets.token_hex(4)
    subscribed(server, fake, bob, "bob-" + name)
    subscribed(server, fake, carol, "carol-" + name)
    watched(server, bob.inboxes[0])
    send(relay, bob.inboxes[0])
    wait_for(lambda: any(r.path == f"/push/bob-{name}" for r in fake.records), "bob's push")
    time.sleep(0.3)
    assert [r.path for r in fake.records] == [f"/push/bob-{name}"]  # carol's browser stays asleep
    assert fake.records[0].body == b"" and fake.records[0].problems == ()


def test_a_new_inbox_key_is_picked_up_without_a_restart(home):
    server, relay, fake = home
    fake.records.clear()
    dave = Person((server, None))
    name = secrets.token_hex(4)
    subscribed(server, fake, dave, name)
    newer = dave.add_inbox()  # a chain push: the listener recomputes at once
    watched(server, newer)
    send(relay, newer)
    wait_for(
        lambda: [r.path for r in fake.records] == [f"/push/{name}"], "the push for the new key"
    )


def test_unknown_routing_ids_and_forged_events_push_nothing(home):
    server, relay, fake = home
    fake.records.clear()
    erin = Person((server, None))
    subscribed(server, fake, erin, secrets.token_hex(4))
    watched(server, erin.inboxes[0])
    listener = server.app.state.kez.nostr
    pushed = listener.pushed
    send(relay, routing_id(InboxSecret.generate().key_id))  # nobody's routing id
    from kez_transport_nostr.events import envelope_event

    forged = envelope_event(erin.inboxes[0], ENVELOPE.decode())
    forged["sig"] = "00" * 64
    asyncio.run(listener._event(forged))  # what a hostile relay could hand over
    time.sleep(0.5)
    assert listener.pushed == pushed and fake.records == []


def test_a_bad_relay_url_is_a_config_error():
    with pytest.raises(ConfigError, match="nostr relay"):
        ServerSettings(server_name="example.org", nostr_relays=["https://relay.example"])
