"""The live contract suite for message transport plugins (`kez_register_transports`)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from ..errors import DecodeError
from ..keys import Signer
from ..protocols import missing_members
from ..registry import Registry
from ._support import (
    _assert_loaded,
    provider,
)


class TransportContract:
    """Live checks for a message transport plugin (`kez_register_transports`).

    Subclass it and provide three fixtures: `transport`, `transport_context`
    (a `ChannelContext` whose options point at a real server your suite
    started on 127.0.0.1: a NATS server, a nostr relay) and
    `unreachable_context` (the same options pointing at a port where nothing
    listens)::

        class TestNatsTransport(TransportContract):
            @pytest.fixture
            def transport(self):
                return NatsTransport()

            @pytest.fixture
            def transport_context(self, nats_url):
                return ChannelContext(options={"nats_url": nats_url}, timeout=5)

            @pytest.fixture
            def unreachable_context(self, free_port):
                return ChannelContext(options={"nats_url": f"nats://127.0.0.1:{free_port}"}, timeout=2)

    It checks: Protocol conformance and options; that an envelope sent after
    a subscription is live arrives byte for byte, only at its routing id; that
    a real message sealed by `kez_core.messaging` arrives and opens once;
    that a burst of envelopes all arrive; that the largest envelope the
    transport claims to carry does, and one byte more is refused with
    `EnvelopeTooLarge` before anything is sent; that a bad routing id is a
    `DecodeError`; and that an unreachable server is a `TransportError`
    (for sending and for subscribing), never another exception.
    """

    burst = 20
    receive_timeout = 10.0

    @pytest.fixture
    def transport(self) -> Any:
        pytest.fail("subclass TransportContract and provide a `transport` fixture")

    @pytest.fixture
    def transport_context(self) -> Any:
        pytest.fail("provide a `transport_context` fixture (options pointing at a live server)")

    @pytest.fixture
    def unreachable_context(self) -> Any:
        pytest.fail("provide an `unreachable_context` fixture (options pointing at a closed port)")

    # ------------------------------------------------------------ helpers

    @staticmethod
    def routing_id() -> str:
        import secrets

        return secrets.token_hex(32)

    @staticmethod
    def envelope(size: int = 1437) -> bytes:
        """An envelope-shaped ASCII text of `size` bytes (transports never look inside)."""
        import base64
        import os

        body = base64.urlsafe_b64encode(os.urandom(size)).rstrip(b"=")
        return (b"kez:e1:" + body)[:size]

    def exchange(
        self, transport: Any, ctx: Any, routing_id: str, envelopes: list[bytes]
    ) -> list[bytes]:
        """Subscribe, send `envelopes`, and collect as many as were sent (or time out)."""
        import asyncio

        async def run() -> list[bytes]:
            got: list[bytes] = []
            async with transport.subscribe(routing_id, ctx) as inbox:
                for envelope in envelopes:
                    await transport.send(routing_id, envelope, ctx)

                async def collect() -> None:
                    async for envelope in inbox:
                        got.append(envelope)
                        if len(got) >= len(envelopes):
                            return

                try:
                    await asyncio.wait_for(collect(), self.receive_timeout)
                except TimeoutError:
                    pass
            return got

        return asyncio.run(run())

    # -------------------------------------------------------------- checks

    def test_conforms_to_protocol(
        self, transport: Any, contract_registry_transport: Registry
    ) -> None:
        from ..protocols import ChannelOption, Transport

        assert missing_members("transport", transport) == []
        assert isinstance(transport, Transport)
        assert isinstance(transport.name, str) and transport.name.isidentifier()
        assert isinstance(transport.max_envelope, int) and transport.max_envelope >= 2048
        assert inspect.iscoroutinefunction(transport.send), "send must be `async def`"
        names = [o.name for o in transport.options]
        assert len(names) == len(set(names)), "option names must be unique"
        for option in transport.options:
            assert isinstance(option, ChannelOption)
            assert option.flag.startswith("--") and option.env == option.env.upper() and option.help
        assert contract_registry_transport.transport(transport.name) is transport

    @pytest.fixture
    def contract_registry_transport(self, transport: Any) -> Registry:
        registry = Registry(plugins=[provider(transports=[transport])], entry_points=False, env={})
        _assert_loaded(registry, f"transport {getattr(transport, 'name', transport)!r}")
        return registry

    def test_an_envelope_arrives_byte_for_byte(
        self, transport: Any, transport_context: Any
    ) -> None:
        envelope = self.envelope()
        assert self.exchange(transport, transport_context, self.routing_id(), [envelope]) == [
            envelope
        ]

    def test_routing_ids_are_kept_apart(self, transport: Any, transport_context: Any) -> None:
        import asyncio

        mine, other = self.routing_id(), self.routing_id()
        envelope, stray = self.envelope(), self.envelope()

        async def run() -> list[bytes]:
            got: list[bytes] = []
            async with transport.subscribe(mine, transport_context) as inbox:
                await transport.send(other, stray, transport_context)
                await transport.send(mine, envelope, transport_context)

                async def collect() -> None:
                    async for item in inbox:
                        got.append(item)
                        if item == envelope:
                            return

                await asyncio.wait_for(collect(), self.receive_timeout)
            return got

        assert asyncio.run(run()) == [envelope]

    def test_a_burst_all_arrives(self, transport: Any, transport_context: Any) -> None:
        envelopes = [self.envelope(1437 + i) for i in range(self.burst)]
        got = self.exchange(transport, transport_context, self.routing_id(), envelopes)
        assert sorted(got) == sorted(envelopes)

    def test_the_largest_envelope_arrives_and_one_byte_more_is_refused(
        self, transport: Any, transport_context: Any
    ) -> None:
        import asyncio

        from ..errors import EnvelopeTooLarge

        largest = self.envelope(transport.max_envelope)
        routing_id = self.routing_id()
        assert self.exchange(transport, transport_context, routing_id, [largest]) == [largest]
        with pytest.raises(EnvelopeTooLarge):
            asyncio.run(
                transport.send(
                    routing_id, self.envelope(transport.max_envelope + 1), transport_context
                )
            )

    def test_a_real_sealed_message_opens_after_the_trip(
        self, transport: Any, transport_context: Any, tmp_path: Any
    ) -> None:
        """A message signed, padded and sealed by kez_core.messaging arrives and opens, once."""
        from ..messaging import (
            InboxSecret,
            MessageRefused,
            ReplayStore,
            create_message,
            open_envelope,
            routing_id,
            seal_message,
            text_body,
        )

        alice, bob, inbox = Signer.generate(), Signer.generate(), InboxSecret.generate()
        message = create_message(
            alice,
            sender_identity=alice.key_id,
            recipient=bob.key_id,
            inbox_key=inbox.key_id,
            body=text_body("hello over " + transport.name),
        )
        envelope = seal_message(message).encode("ascii")
        got = self.exchange(transport, transport_context, routing_id(inbox.key_id), [envelope])
        assert got == [envelope]
        with ReplayStore(tmp_path / "replay.db") as replay:
            opened = open_envelope(got[0], [inbox], identity=bob.key_id, replay=replay)
            assert opened.id == message.id and opened.sender == alice.key_id
            with pytest.raises(MessageRefused):  # a second delivery is a replay
                open_envelope(got[0], [inbox], identity=bob.key_id, replay=replay)

    def test_a_bad_routing_id_is_a_decode_error(
        self, transport: Any, transport_context: Any
    ) -> None:
        import asyncio

        for bad in ("", "ABC", "0" * 32, "0" * 63, "g" * 64, "0" * 64 + ".>", "*"):
            with pytest.raises(DecodeError):
                asyncio.run(transport.send(bad, self.envelope(), transport_context))

    def test_an_unreachable_server_is_a_transport_error(
        self, transport: Any, unreachable_context: Any
    ) -> None:
        import asyncio

        from ..errors import TransportError

        with pytest.raises(TransportError):
            asyncio.run(transport.send(self.routing_id(), self.envelope(), unreachable_context))

        async def listen() -> None:
            async with transport.subscribe(self.routing_id(), unreachable_context) as inbox:
                async for _ in inbox:
                    break

        with pytest.raises(TransportError):
            asyncio.run(listen())
