"""Small helpers shared by the bluesky tests (claims in compact form, decoding candidates)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from kez_core.claim import check_claim, create_claim
from kez_core.codec import compact_encode
from kez_core.encoding import decode_any
from kez_core.keys import Signer
from kez_core.signed import SignedObject
from kez_core.status import ClaimCheck
from kez_core.timefmt import now


def run(coro):
    return asyncio.run(coro)


def compact_claim(signer: Signer, subject: str, **kwargs) -> str:
    return compact_encode(create_claim(signer, subject, **kwargs))


def expired_compact_claim(signer: Signer, subject: str) -> str:
    created = now() - timedelta(days=10)
    return compact_encode(
        create_claim(signer, subject, created_at=created, expires_in=timedelta(days=1))
    )


def tampered_compact_claim(signer: Signer, subject: str) -> str:
    """A claim whose payload was changed after signing (the signature no longer matches)."""
    data = create_claim(signer, subject).to_dict()
    data["payload"]["nonce"] = "0" * 32
    return compact_encode(SignedObject.from_dict(data))


def checks(outcome) -> list[ClaimCheck]:
    """check_claim of every object in every candidate of a FetchOutcome."""
    return [
        check_claim(obj, source=c.source) for c in outcome.candidates for obj in decode_any(c.text)
    ]
