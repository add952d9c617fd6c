"""Identities on a home server with a NATS callout, for the callout tests (a unique module name)."""

from __future__ import annotations

import asyncio
import secrets

import httpx
from kez_core.tls import ssl_context  # one CA bundle load per process
import pytest
from kez_core.errors import TransportError
from kez_core.keys import Signer
from kez_core.messaging import InboxSecret, routing_id
from kez_core.protocols import ChannelContext
from kez_core.sigchain import SigchainBuilder
from kez_transport_nats.transport import NatsTransport
from server_helpers import identity_path, new_handle, registration

ENVELOPE = b"kez:e1:" + b"A" * 200


class Person:
    """An identity registered on the home server, with a chain holding an inbox key."""

    def __init__(self, home, alg: str = "ed25519", inbox: bool = True) -> None:
        self.server, self.nats = home  # anything with a .url: the HTTP base URL, the nats:// URL
        self.primary = Signer.generate(alg)
        self.identity = self.primary.key_id
        self.builder = SigchainBuilder()
        self.inboxes: list[str] = []
        self.handle = new_handle()
        with httpx.Client(base_url=self.server.url, timeout=10, verify=ssl_context()) as http:
            answer = http.post("/v1/register", json=registration(self.primary, self.handle))
            assert answer.status_code == 201, answer.text
        if inbox:
            self.add_inbox()

    def push(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=10, verify=ssl_context()) as http:
            answer = http.post(
                identity_path(self.identity),
                content=b"".join(self.builder.lines),
                headers={"content-type": "application/x-ndjson"},
            )
            assert answer.status_code == 200, answer.text

    def add_inbox(self, device: Signer | None = None) -> str:
        key = InboxSecret.generate().key_id
        signer = device or self.primary
        self.builder.add_inbox(signer, key, device=signer.key_id)
        self.inboxes.append(routing_id(key))
        self.push()
        return self.inboxes[-1]

    def add_device(self) -> Signer:
        device = Signer.generate("ed25519")
        self.builder.add_device(self.primary, device, "laptop")
        self.push()
        return device

    def ctx(self, signer: Signer | None = None) -> ChannelContext:
        return ChannelContext(
            options={
                "nats_url": (self.nats.url,),
                "signer": signer or self.primary,
                "identity": self.identity,
            },
            timeout=5,
        )


def roundtrip(receiver: ChannelContext, sender: ChannelContext, route: str) -> bytes:
    transport = NatsTransport()

    async def run() -> bytes:
        async with transport.subscribe(route, receiver) as inbox:
            await transport.send(route, ENVELOPE, sender)
            return await asyncio.wait_for(anext(inbox), 5)

    return asyncio.run(run())


def refused(ctx: ChannelContext) -> TransportError:
    with pytest.raises(TransportError) as caught:
        asyncio.run(NatsTransport().send(secrets.token_hex(32), ENVELOPE, ctx))
    assert "authorization" in caught.value.message.lower(), caught.value.message
    return caught.value
