"""kez-server as the NATS auth callout, against a real nats-server started with the generated config.

Every client here is a real nats-py connection through the kez transport
(or bare nats-py for what a misbehaving client sends); nothing is mocked.
"""

from __future__ import annotations

import asyncio
import base64
import secrets

import pytest
from kez_core.errors import TransportError
from kez_core.keys import Signer
from kez_core.protocols import ChannelContext
from kez_server.nats_config import load_keys, render_config
from kez_server.testing import running_callout, running_server
from kez_transport_nats.auth import ClientAuth
from kez_transport_nats.testing import running_nats_server
from kez_transport_nats.transport import NatsTransport
from nats_callout_helpers import ENVELOPE, Person, refused, roundtrip


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """kez-server (SQLite) + nats-server with the written config + the callout, all on 127.0.0.1."""
    db = str(tmp_path_factory.mktemp("home") / "kez.db")
    with running_server(db=db) as server:
        config = render_config(load_keys(db), "127.0.0.1:4222")
        with running_nats_server(config=config) as nats:
            with running_callout(server, nats.url):
                yield server, nats


def test_an_ed25519_primary_reads_its_inbox_and_publishes(home):
    alice, bob = Person(home), Person(home)
    assert roundtrip(alice.ctx(), bob.ctx(), alice.inboxes[0]) == ENVELOPE


def test_a_bip340_primary_authenticates_with_a_token(home):
    carol, bob = Person(home, alg="nostr"), Person(home)
    assert roundtrip(carol.ctx(), bob.ctx(), carol.inboxes[0]) == ENVELOPE


def test_a_device_key_reads_the_identity_inboxes(home):
    alice = Person(home)
    laptop = alice.add_device()
    route = alice.add_inbox(device=laptop)
    assert roundtrip(alice.ctx(laptop), alice.ctx(), route) == ENVELOPE
    # the device may read the primary's inbox too: permissions are per identity
    assert roundtrip(alice.ctx(laptop), alice.ctx(), alice.inboxes[0]) == ENVELOPE


def test_a_removed_device_is_refused_on_its_next_connect(home):
    alice = Person(home)
    laptop = alice.add_device()
    assert roundtrip(alice.ctx(laptop), alice.ctx(), alice.inboxes[0]) == ENVELOPE
    alice.builder.remove_device(alice.primary, laptop.key_id)
    alice.push()
    refused(alice.ctx(laptop))


def test_an_unknown_key_is_refused(home):
    _server, nats = home
    stranger = Signer.generate("ed25519")
    refused(ChannelContext(options={"nats_url": (nats.url,), "signer": stranger}, timeout=5))


def test_a_registered_key_claiming_another_identity_is_refused(home):
    alice, mallory = Person(home), Person(home)
    ctx = mallory.ctx()
    ctx.options["identity"] = alice.identity
    refused(ctx)


def test_no_credentials_are_refused(home):
    _server, nats = home
    refused(ChannelContext(options={"nats_url": (nats.url,)}, timeout=5))


def test_a_bad_nonce_signature_is_refused(home):
    alice = Person(home)
    auth = ClientAuth(alice.primary, alice.identity)

    async def connect() -> None:
        from nats.aio.client import Client

        client = Client()
        auth.apply(client)
        await client.connect(
            servers=[alice.nats.url],
            signature_cb=lambda nonce: base64.b64encode(alice.primary.sign(b"not the nonce")),
            token=auth.token,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            connect_timeout=5,
        )
        await client.close()

    with pytest.raises(Exception, match="(?i)authorization"):
        asyncio.run(connect())


def test_a_bip340_token_for_another_nonce_is_refused(home):
    carol = Person(home, alg="nostr")
    auth = ClientAuth(carol.primary, carol.identity)
    from kez_transport_nats.auth import make_token

    async def connect() -> None:
        from nats.aio.client import Client

        client = Client()
        auth.apply(client)
        await client.connect(
            servers=[carol.nats.url],
            signature_cb=auth.sign_nonce,
            token=lambda: make_token(
                identity=carol.identity, signer=carol.primary, nonce="old", nkey=auth.nkey
            ),
            allow_reconnect=False,
            max_reconnect_attempts=1,
            connect_timeout=5,
        )
        await client.close()

    with pytest.raises(Exception, match="(?i)authorization"):
        asyncio.run(connect())


def test_subscribing_to_another_identity_inbox_is_refused(home):
    alice, mallory = Person(home), Person(home)
    transport = NatsTransport()

    async def listen() -> None:
        async with transport.subscribe(alice.inboxes[0], mallory.ctx()):
            pytest.fail("the subscription must be refused")

    with pytest.raises(TransportError, match="refused the subscription") as caught:
        asyncio.run(listen())
    assert "permissions violation" in caught.value.message.lower()


def test_publishing_to_any_inbox_is_allowed_but_not_elsewhere(home):
    alice = Person(home)
    asyncio.run(NatsTransport().send(secrets.token_hex(32), ENVELOPE, alice.ctx()))

    async def publish_elsewhere() -> str:
        from kez_transport_nats.config import settings
        from kez_transport_nats.connection import connect, settle

        conn = await connect(settings(alice.ctx()), 5)
        try:
            await conn.client.publish("other.subject", b"x")
            await settle(conn.client, 5)
            return " ".join(str(e) for e in conn.errors)
        finally:
            await conn.close()

    assert "permissions violation" in asyncio.run(publish_elsewhere()).lower()


def test_an_identity_without_an_inbox_connects_and_may_only_publish(home):
    dave = Person(home, inbox=False)
    asyncio.run(NatsTransport().send(secrets.token_hex(32), ENVELOPE, dave.ctx()))
