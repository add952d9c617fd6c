"""Authenticated servers: a token accepted or refused, and a server's permissions refusing an inbox."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from kez_core.errors import TransportError
from kez_core.protocols import ChannelContext
from kez_transport_nats.transport import NatsTransport
from nats_helpers import TOKEN

ENVELOPE = b"kez:e1:" + b"A" * 1430


def roundtrip(ctx: ChannelContext, envelope: bytes = ENVELOPE) -> bytes:
    transport, routing_id = NatsTransport(), secrets.token_hex(32)

    async def run() -> bytes:
        async with transport.subscribe(routing_id, ctx) as inbox:
            await transport.send(routing_id, envelope, ctx)
            return await asyncio.wait_for(anext(inbox), 5)

    return asyncio.run(run())


def test_the_right_token_is_accepted(nats_token_server):
    ctx = ChannelContext(options=nats_token_server.ctx_options(token=TOKEN), timeout=5)
    assert roundtrip(ctx) == ENVELOPE


@pytest.mark.parametrize("token", ["wrong-token", None])
def test_a_wrong_or_missing_token_is_a_transport_error_naming_authorization(
    nats_token_server, token
):
    ctx = ChannelContext(options=nats_token_server.ctx_options(token=token), timeout=5)
    with pytest.raises(TransportError) as sent:
        asyncio.run(NatsTransport().send(secrets.token_hex(32), ENVELOPE, ctx))
    assert "authorization" in sent.value.message
    assert "--nats-token" in sent.value.hint
    assert "wrong-token" not in sent.value.message + sent.value.hint  # secrets are never echoed
    with pytest.raises(TransportError, match="authorization"):
        roundtrip(ctx)


def test_a_token_in_the_environment_form_works_too(nats_token_server):
    """The CLI hands options over as strings; a one-element comma list is the same URL."""
    options = {"nats_url": nats_token_server.url + ",", "nats_token": f"  {TOKEN}  "}
    assert roundtrip(ChannelContext(options=options, timeout=5)) == ENVELOPE


def _user_url(server, user: str, password: str) -> str:
    return f"nats://{user}:{password}@127.0.0.1:{server.port}"


def test_a_publish_the_server_forbids_is_a_transport_error(nats_permissions_server):
    ctx = ChannelContext(
        options={"nats_url": _user_url(nats_permissions_server, "reader", "r1")}, timeout=5
    )
    with pytest.raises(TransportError) as refused:
        asyncio.run(NatsTransport().send(secrets.token_hex(32), ENVELOPE, ctx))
    assert "refused the envelope" in refused.value.message
    assert "permissions violation" in refused.value.message.lower()
    assert "r1" not in refused.value.message  # the URL's password is redacted
    assert "***@127.0.0.1" in refused.value.message


def test_a_subscription_the_server_forbids_is_a_transport_error_on_entering(
    nats_permissions_server,
):
    ctx = ChannelContext(
        options={"nats_url": _user_url(nats_permissions_server, "sender", "s1")}, timeout=5
    )

    async def listen() -> None:
        async with NatsTransport().subscribe(secrets.token_hex(32), ctx):
            pytest.fail("the subscription was refused; entering must raise")

    with pytest.raises(TransportError, match="refused the subscription"):
        asyncio.run(listen())


def test_allowed_users_exchange_envelopes(nats_permissions_server):
    transport, routing_id = NatsTransport(), secrets.token_hex(32)
    reader = ChannelContext(
        options={"nats_url": _user_url(nats_permissions_server, "reader", "r1")}, timeout=5
    )
    sender = ChannelContext(
        options={"nats_url": _user_url(nats_permissions_server, "sender", "s1")}, timeout=5
    )

    async def run() -> bytes:
        async with transport.subscribe(routing_id, reader) as inbox:
            await transport.send(routing_id, ENVELOPE, sender)
            return await asyncio.wait_for(anext(inbox), 5)

    assert asyncio.run(run()) == ENVELOPE


def test_a_wrong_password_is_refused_authorization(nats_permissions_server):
    ctx = ChannelContext(
        options={"nats_url": _user_url(nats_permissions_server, "reader", "nope")}, timeout=5
    )
    with pytest.raises(TransportError, match="refused authorization"):
        asyncio.run(NatsTransport().send(secrets.token_hex(32), ENVELOPE, ctx))


def test_refusals_are_seen_every_time_not_by_luck(nats_permissions_server):
    """nats-py's flush() can return before the server saw our SUB/PUB (see connection.settle).

    With a single flush about 19 in 20 of these refusals went unnoticed.
    """
    transport = NatsTransport()
    sender = ChannelContext(
        options={"nats_url": _user_url(nats_permissions_server, "sender", "s1")}, timeout=5
    )
    reader = ChannelContext(
        options={"nats_url": _user_url(nats_permissions_server, "reader", "r1")}, timeout=5
    )

    async def run() -> int:
        refused = 0
        for _ in range(20):
            with pytest.raises(TransportError):
                async with transport.subscribe(secrets.token_hex(32), sender):
                    pass
            refused += 1
            with pytest.raises(TransportError):
                await transport.send(secrets.token_hex(32), ENVELOPE, reader)
            refused += 1
        return refused

    assert asyncio.run(run()) == 40
