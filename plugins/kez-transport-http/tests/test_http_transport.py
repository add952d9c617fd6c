"""The http transport's own behaviour: finding the handle, catch-up, refusals, settings."""

from __future__ import annotations

import asyncio

import pytest
from inbox_fixtures import envelope, routing
from kez_core.errors import TransportError
from kez_core.keys import Signer
from kez_core.protocols import ChannelContext
from kez_transport_http.config import HttpConfigError, target
from kez_transport_http.transport import HttpTransport

T = HttpTransport()


async def _first(ctx, route, timeout=5.0):
    async with T.subscribe(route, ctx) as inbox:
        async for item in inbox:
            return item
    return None


def test_the_handle_is_found_by_identity(kez_server, owner):
    signer, _handle = owner
    route, text = routing(), envelope()
    send_ctx = ChannelContext(
        options={"inbox_server": kez_server.url, "recipient": signer.key_id}, timeout=5
    )
    asyncio.run(T.send(route, text, send_ctx))
    read_ctx = ChannelContext(options={"inbox_server": kez_server.url, "signer": signer}, timeout=5)
    assert asyncio.run(asyncio.wait_for(_first(read_ctx, route), 10)) == text


def test_a_subscription_catches_up_on_what_arrived_before_it(context):
    route, text = routing(), envelope()
    asyncio.run(T.send(route, text, context))  # nobody listening yet
    assert asyncio.run(asyncio.wait_for(_first(context, route), 10)) == text


def test_a_key_that_is_not_the_handles_is_refused(context):
    ctx = ChannelContext(options={**context.options, "signer": Signer.generate()}, timeout=5)
    with pytest.raises(TransportError, match="401"):
        asyncio.run(_first(ctx, routing()))


def test_an_unknown_recipient_is_a_transport_error(kez_server):
    ctx = ChannelContext(
        options={"inbox_server": kez_server.url, "inbox_handle": "nobody-here"}, timeout=5
    )
    with pytest.raises(TransportError, match="404"):
        asyncio.run(T.send(routing(), envelope(), ctx))
    ctx = ChannelContext(
        options={"inbox_server": kez_server.url, "recipient": Signer.generate().key_id}, timeout=5
    )
    with pytest.raises(TransportError, match="no handle"):
        asyncio.run(T.send(routing(), envelope(), ctx))


def test_settings():
    assert (
        target(ChannelContext(options={"inbox_handle": "bob@kez.example"})).base
        == "https://kez.example"
    )
    where = target(
        ChannelContext(
            options={"inbox_handle": "bob@kez.example", "inbox_server": "http://127.0.0.1:9/"}
        )
    )
    assert where.base == "http://127.0.0.1:9" and where.handle == "bob"
    for bad in (
        {},
        {"inbox_handle": "bob"},
        {"inbox_handle": "B!", "inbox_server": "http://x"},
        {"inbox_server": "ftp://x"},
    ):
        with pytest.raises(HttpConfigError):
            target(ChannelContext(options=bad))


def test_listening_needs_a_key(context):
    ctx = ChannelContext(options={k: v for k, v in context.options.items() if k != "signer"})
    with pytest.raises(HttpConfigError):
        asyncio.run(_first(ctx, routing()))
