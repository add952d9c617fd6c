"""Helpers shared by the github channel tests (claims, contexts, running coroutines)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

from kez_channel_github import GitHubChannel
from kez_channel_github.testing import FakeGitHub
from kez_core.claim import check_claim, create_claim
from kez_core.encoding import decode_any, encode
from kez_core.keys import Signer
from kez_core.protocols import ChannelContext, FetchOutcome
from kez_core.signed import SignedObject
from kez_core.status import ClaimCheck

CHANNEL = GitHubChannel()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def context(
    github: FakeGitHub, *, timeout: float = 5.0, token: str | None = None, **extra: Any
) -> ChannelContext:
    return ChannelContext(options={**github.ctx_options(token), **extra}, timeout=timeout)


def fetch(github: FakeGitHub, handle: str = "alice", **kw: Any) -> FetchOutcome:
    return run(CHANNEL.fetch(handle, context(github, **kw)))


def claim(
    subject: str = "github:alice",
    signer: Signer | None = None,
    *,
    expires_in: timedelta | None = None,
    created_at: datetime | None = None,
) -> tuple[Signer, SignedObject]:
    signer = signer or Signer.generate()
    return signer, create_claim(signer, subject, expires_in=expires_in, created_at=created_at)


def markdown(obj: SignedObject, prose: str = "This gist proves my KEZ identity.\n\n") -> str:
    return prose + encode(obj, "markdown")


def tampered(obj: SignedObject) -> SignedObject:
    """The same claim with one payload field changed and the old signature kept."""
    data = json.loads(encode(obj, "json"))
    data["payload"]["nonce"] = "0" * 32
    (changed,) = decode_any(json.dumps(data))
    return changed


def checks(outcome: FetchOutcome) -> list[ClaimCheck]:
    """check_claim for every object in every candidate."""
    return [
        check_claim(obj, source=candidate.source)
        for candidate in outcome.candidates
        for obj in decode_any(candidate.text)
    ]
