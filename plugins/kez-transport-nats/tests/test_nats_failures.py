"""Trouble: bad settings, silent and vanishing servers, and leaving a subscription from another task."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest
from kez_core.errors import DecodeError, TransportError
from kez_core.protocols import ChannelContext
from kez_transport_nats.config import server_urls, subject_for
from kez_transport_nats.errors import NatsConfigError
from kez_transport_nats.testing import running_nats_server
from kez_transport_nats.transport import NatsTransport

ENVELOPE = b"kez:e1:" + b"B" * 1430


def send(options: dict, timeout: float = 2) -> None:
    ctx = ChannelContext(options=options, timeout=timeout)
    asyncio.run(NatsTransport().send(secrets.token_hex(32), ENVELOPE, ctx))


def test_the_subject_is_kez_inbox_and_the_routing_id_is_checked_first():
    routing_id = "0123456789abcdef" * 4
    assert subject_for(routing_id) == "kez.inbox." + routing_id
    for bad in ("a.b", "*", ">", routing_id + ".x", routing_id.upper(), None):
        with pytest.raises(DecodeError):
            subject_for(bad)
    with pytest.raises(DecodeError):  # subscribe refuses at the call, before any I/O
        NatsTransport().subscribe("kez.>", ChannelContext())


def test_urls_default_split_and_deduplicate():
    assert server_urls(ChannelContext()) == ("nats://127.0.0.1:4222",)
    assert server_urls(ChannelContext(options={"nats_url": None})) == ("nats://127.0.0.1:4222",)
    options = {"nats_url": ["nats://a:4222, b:4223", "tls://c", "nats://a:4222"]}
    assert server_urls(ChannelContext(options=options)) == (
        "nats://a:4222",
        "nats://b:4223",
        "tls://c",
    )


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:4222", "ws://127.0.0.1:8080", "nats://", "nats://h:99999", " , "]
)
def test_a_bad_url_is_a_config_error(url):
    with pytest.raises(NatsConfigError) as bad:
        send({"nats_url": url})
    assert isinstance(bad.value, TransportError) and bad.value.exit_code == 2
    assert "--nats-url" in bad.value.hint


def test_a_password_in_a_bad_url_is_not_echoed():
    with pytest.raises(NatsConfigError) as bad:
        send({"nats_url": "http://user:hunter2@127.0.0.1:4222"})
    assert "hunter2" not in bad.value.message


def test_a_missing_creds_file_is_a_config_error(tmp_path):
    with pytest.raises(NatsConfigError, match="credentials file"):
        send({"nats_url": "nats://127.0.0.1:1", "nats_creds": str(tmp_path / "none.creds")})


def test_a_server_that_never_answers_is_a_transport_error_within_the_timeout(silent_url):
    started = time.monotonic()
    with pytest.raises(TransportError, match="answered within 1 s"):
        send({"nats_url": silent_url}, timeout=1)
    assert time.monotonic() - started < 3


def test_the_second_server_of_a_cluster_is_used_when_the_first_is_down(closed_port, nats_server):
    transport, routing_id = NatsTransport(), secrets.token_hex(32)
    options = {"nats_url": f"nats://127.0.0.1:{closed_port},{nats_server.url}"}
    ctx = ChannelContext(options=options, timeout=5)

    async def run() -> bytes:
        async with transport.subscribe(routing_id, ctx) as inbox:
            await transport.send(routing_id, ENVELOPE, ctx)
            return await asyncio.wait_for(anext(inbox), 5)

    assert asyncio.run(run()) == ENVELOPE


def test_a_server_that_goes_away_ends_the_subscription_with_a_transport_error():
    """Decision (README): a lost connection raises, it does not end the iteration quietly.

    Core NATS keeps nothing for a disconnected subscriber, so a quiet end
    would look like "no more mail" while envelopes are being lost.
    """
    transport, routing_id = NatsTransport(), secrets.token_hex(32)
    with running_nats_server() as server:
        ctx = ChannelContext(options=server.ctx_options(), timeout=5)

        async def run() -> list[bytes]:
            got: list[bytes] = []
            async with transport.subscribe(routing_id, ctx) as inbox:
                await transport.send(routing_id, ENVELOPE, ctx)
                got.append(await asyncio.wait_for(anext(inbox), 5))
                await asyncio.to_thread(server.stop)
                async for envelope in inbox:  # must end, with an error, without a timeout
                    got.append(envelope)
            return got

        with pytest.raises(TransportError) as lost:
            asyncio.run(asyncio.wait_for(run(), 10))
    assert "lost the connection" in lost.value.message and server.url in lost.value.message
    assert "subscribe again" in lost.value.hint


def test_leaving_the_block_ends_an_iteration_in_another_task_cleanly(nats_server):
    transport = NatsTransport()
    ctx = ChannelContext(options=nats_server.ctx_options(), timeout=5)

    async def run() -> list[bytes]:
        got: list[bytes] = []

        async def reader(inbox) -> None:
            async for envelope in inbox:
                got.append(envelope)

        routing_id = secrets.token_hex(32)
        async with transport.subscribe(routing_id, ctx) as inbox:
            task = asyncio.create_task(reader(inbox))
            await transport.send(routing_id, ENVELOPE, ctx)
            while not got:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(task, 5)  # ended by leaving, not by an error
        with pytest.raises(StopAsyncIteration):
            await anext(inbox)
        return got

    assert asyncio.run(run()) == [ENVELOPE]
