"""Helpers for the ap channel's tests (named to avoid clashes with other plugins' suites)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from kez_channel_activitypub import ActivityPubChannel
from kez_core.claim import create_claim
from kez_core.encoding import decode_any, encode
from kez_core.keys import Signer
from kez_core.protocols import ChannelContext, FetchOutcome
from kez_core.signed import SignedObject
from kez_core.testing.ports import free_port
from kez_core.timefmt import now

DOMAIN = "mastodon.example"
CHANNEL = ActivityPubChannel()


def run(coro):
    return asyncio.run(coro)


def compact_claim(signer: Signer, subject: str, **kwargs) -> str:
    return encode(create_claim(signer, subject, **kwargs), "compact")


def expired_claim(signer: Signer, subject: str) -> str:
    created = now() - timedelta(days=10)
    return compact_claim(signer, subject, created_at=created, expires_in=timedelta(days=1))


def tampered_claim(signer: Signer, subject: str) -> str:
    """A decodable claim whose payload was changed after signing."""
    claim = create_claim(signer, subject)
    payload = {**claim.payload, "nonce": "0" * 32}
    return encode(SignedObject(claim.kind, payload, claim.signature), "compact")


def fetch(server, handle: str, *, timeout: float = 5.0, http_client=None) -> FetchOutcome:
    ctx = ChannelContext(options=server.ctx_options(), timeout=timeout, http_client=http_client)
    return run(CHANNEL.fetch(handle, ctx))


def publish(server, handle: str, proof: str, token: str | None, *, timeout: float = 5.0):
    ctx = ChannelContext(options=server.ctx_options(token=token), timeout=timeout)
    return run(CHANNEL.publish(handle, proof, ctx))


def objects(outcome: FetchOutcome):
    """Every signed object decoded from the outcome's candidates."""
    found = []
    for candidate in outcome.candidates:
        found.extend(decode_any(candidate.text))
    return found


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"
