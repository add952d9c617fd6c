"""Publish a claim on its channel and record it in the identity's sigchain.

One function shared by `kez claim publish` and `kez demo`, so the demo runs
exactly the code path users run: reuse a still-valid claim from the chain
(re-publishing never piles up claims), encode it in the channel's preferred
form, make the real publish call, then append a `claim` link.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs

from kez_core.claim import create_claim
from kez_core.keys import Signer
from kez_core.keystore import Keystore, atomic_write
from kez_core.protocols import ChannelContext
from kez_core.registry import Registry
from kez_core.signed import SignedObject
from kez_core.subjects import normalize_subject

from .io import chain_builder, read_chain_file


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
        return attrs.asdict(self)


def reusable_claim(lines: list[bytes], subject: str, primary: str, registry: Registry) -> SignedObject | None:
    """The newest claim in the chain on `subject` by `primary` that is still valid."""
    from kez_core.codec import object_from_json
    from kez_core.sigchain import claim_statuses, merge_copies

    merged = merge_copies([lines], registry=registry)
    if merged.state is None:
        return None
    statuses = claim_statuses(merged.state)
    newest = None
    for record in merged.state.claims.values():
        check = statuses.get(record.claim_id)
        if check is not None and check.ok and record.subject == subject and record.primary == primary:
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
    lines = read_chain_file(chain_path, missing_ok=True)
    claim = reusable_claim(lines, subject, signer.key_id, registry) if lines else None
    reused = claim is not None
    if claim is None:
        claim = create_claim(signer, subject, expires_in=expires_in, registry=registry)
    text = registry.encoding(channel.proof_encoding).encode(claim)
    if channel_name == "nostr" and "nostr_secret" not in ctx.options and signer.key_id == f"nostr:{handle}":
        ctx.options["nostr_secret"] = signer.secret.hex()  # the identity key is the nostr account
    outcome = await channel.publish(handle, text, ctx)
    seqno = None
    if not reused:
        from kez_core.sigchain import append_links

        link = chain_builder(lines, registry).claim(signer, claim)
        if not chain_path.exists():
            atomic_write(chain_path, b"", 0o644)
        append_links(chain_path, [link], registry=registry)
        seqno = link.seqno
    return Published(subject, claim.id, reused, outcome.location, outcome.detail, seqno)
