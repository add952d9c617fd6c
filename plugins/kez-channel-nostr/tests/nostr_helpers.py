"""Helpers shared by the nostr channel tests (named to avoid clashing with other plugins' helpers)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import attrs

from kez_channel_nostr.channel import NostrChannel
from kez_core.builtins.bip340 import BIP340
from kez_core.claim import check_claim, create_claim
from kez_core.encoding import decode_any, encode
from kez_core.keys import Signer
from kez_core.protocols import ChannelContext, FetchOutcome
from kez_core.status import ClaimCheck
from kez_core.timefmt import now
from kez_core.verifier import RunScope

CHANNEL = NostrChannel()


@attrs.frozen
class NostrAccount:
    """A nostr key pair: the account a claim is about."""

    secret: bytes

    @classmethod
    def new(cls) -> NostrAccount:
        return cls(BIP340.generate_secret())

    @property
    def pubkey(self) -> str:
        return BIP340.public_from_secret(self.secret).hex()

    @property
    def subject(self) -> str:
        return f"nostr:{self.pubkey}"


def claim_text(identity: Signer, account: NostrAccount, **kwargs: Any) -> str:
    """A compact claim `account is identity`, signed by `identity`."""
    return encode(create_claim(identity, account.subject, **kwargs), "compact")


def tampered_text(identity: Signer, account: NostrAccount) -> str:
    claim = create_claim(identity, account.subject)
    forged = attrs.evolve(claim, payload={**claim.payload, "nonce": "0" * 32})
    return encode(forged, "compact")


def expired_text(identity: Signer, account: NostrAccount) -> str:
    return claim_text(
        identity, account, created_at=now() - timedelta(days=2), expires_in=timedelta(days=1)
    )


def ctx(options: dict[str, Any], timeout: float = 5.0) -> ChannelContext:
    return ChannelContext(options=options, timeout=timeout)


# How `fetch` reads: a connection per call (a lone fetch), or within a
# verification run's scope (the run's pooled relay connections, closed after).
SCOPED = False


def fetch(handle: str, options: dict[str, Any], timeout: float = 5.0) -> FetchOutcome:
    if not SCOPED:
        return asyncio.run(CHANNEL.fetch(handle, ctx(options, timeout)))

    async def in_a_run() -> FetchOutcome:
        scope = RunScope()
        try:
            return await CHANNEL.fetch(handle, attrs.evolve(ctx(options, timeout), scope=scope))
        finally:
            await scope.aclose()

    return asyncio.run(in_a_run())


def publish(handle: str, text: str, options: dict[str, Any], timeout: float = 5.0):
    return asyncio.run(CHANNEL.publish(handle, text, ctx(options, timeout)))


def checks(outcome: FetchOutcome) -> list[ClaimCheck]:
    """The verdict on every object in every candidate (what the verification engine does)."""
    return [
        check_claim(obj, source=candidate.source)
        for candidate in outcome.candidates
        for obj in decode_any(candidate.text)
    ]
