"""Publish a claim on its channel and record it in the identity's sigchain.

A kez_core service shared by `kez claim publish`, `kez demo` and library
callers, so each runs exactly the code path users run: reuse a still-valid claim from the chain
(re-publishing never piles up claims), encode it in the channel's preferred
form, make the real publish call, then append a `claim` link.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs

from .claim import create_claim
from .keys import Signer
from .keystore import Keystore, atomic_write
from .plugin import SUBJECT_SECRET
from .protocols import ChannelContext
from .registry import Registry
from .signed import SignedObject
from .sigchain import append_links, continue_chain, read_chain_lines
from .subjects import normalize_subject


@attrs.frozen
class Published:
    """What one publish did: where the proof went and which chain link records it."""

    subject: str
    claim_id: str
    reused: bool  # the claim came from the chain; no new link was added
    location: str
    detail: str | None
    seqno: int | None  # the new link's seqno, None when reused

    def to_json(self) -> dict[str, Any]:
        """What `kez claim publish --json` shows."""
        return attrs.asdict(self)


def reusable_claim(
    lines: list[bytes], subject: str, primary: str, registry: Registry
) -> SignedObject | None:
    """The newest claim in the chain on `subject` by `primary` that is still valid.

    Publishing reuses it instead of signing a new claim, so re-publishing
    (or publishing on a second device) never piles up claims in the chain.
    """
    from .codec import object_from_json
    from .sigchain import claim_statuses, merge_copies

    merged = merge_copies([lines], registry=registry)
    if merged.state is None:
        return None
    statuses = claim_statuses(merged.state)
    newest = None
    for record in merged.state.claims.values():
        check = statuses.get(record.claim_id)
        if (
            check is not None
            and check.ok
            and record.subject == subject
            and record.primary == primary
        ):
            if newest is None or record.seqno > newest.seqno:
                newest = record
    if newest is None:
        return None
    link = object_from_json(merged.lines[newest.seqno - 1])  # only that link is read again
    return SignedObject.from_dict(link.payload["body"]["claim"])


async def publish_claim(
    store: Keystore,
    identity_name: str,
    signer: Signer,
    subject: str,
    ctx: ChannelContext,
    *,
    registry: Registry,
    expires_in: timedelta | None = None,
) -> Published:
    """Publish `subject`'s claim by `signer` through its channel and add it to the chain.

    The chain is written only after the channel accepted the proof, so a
    failed publish leaves the stored chain as it was.
    """
    subject = normalize_subject(subject, registry)
    channel_name, _, handle = subject.partition(":")
    channel = registry.channel(channel_name)
    record = store.get(identity_name)
    chain_path = store.chain_path(record.identity_id)
    lines = read_chain_lines(chain_path, missing_ok=True)
    claim = reusable_claim(lines, subject, signer.key_id, registry) if lines else None
    reused = claim is not None
    if claim is None:
        claim = create_claim(signer, subject, expires_in=expires_in, registry=registry)
    text = registry.encoding(channel.proof_encoding).encode(claim)
    if signer.key_id == subject:  # the subject is the signing key itself (a nostr account's key)
        ctx.options.setdefault(SUBJECT_SECRET, signer.secret.hex())
    outcome = await channel.publish(handle, text, ctx)
    seqno = None
    if not reused:
        link = continue_chain(lines, registry).claim(signer, claim)
        if not chain_path.exists():
            atomic_write(chain_path, b"", 0o644)
        append_links(chain_path, [link], registry=registry)
        seqno = link.seqno
    return Published(subject, claim.id, reused, outcome.location, outcome.detail, seqno)
