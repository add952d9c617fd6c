"""Revoke claims in an identity's own sigchain, by claim id or by subject.

A revoke link (DESIGN §4) makes every copy of a claim verify as `revoked`,
wherever it is found, once a verifier has the chain that holds the link. The
user rarely knows a claim's 64-hex id, but always knows what they claimed:
`github:alice`. So the target is either a claim id (or an unambiguous
prefix of one, at least 8 hex digits) or a subject, which revokes every
claim on it that is not revoked yet. All links are built and checked in
memory first, then appended in one atomic write, so a failure appends
nothing. The signing key is asked for only after the target matched, so a
typo never costs a passphrase prompt.

The CLI (`kez claim revoke`, `kez sigchain revoke`) parses, calls
`revoke_claims`, and renders the `Revocation`; a library caller gets the
same matching rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

from .errors import DecodeError, KezError, StoreError
from .keys import Signer
from .keystore import Keystore
from .registry import Registry
from .sigchain import ChainState, ClaimRecord, Link, SigchainBuilder, append_links, iter_file_lines
from .subjects import normalize_subject

__all__ = ["Revocation", "RevokedClaim", "match_claims", "revoke_claims"]

#: A claim id prefix must be this long, so a short typo cannot match by chance.
MIN_ID_PREFIX = 8
_HEX = re.compile(r"[0-9a-f]+")

#: What to run after a revocation, so that verifiers see it (local chains are private).
REPUBLISH = "kez sigchain publish"


@attrs.frozen
class RevokedClaim:
    """One claim a revocation revoked, and the link that did it."""

    claim_id: str
    subject: str
    seqno: int
    link_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id,
            "subject": self.subject,
            "seqno": self.seqno,
            "link_id": self.link_id,
        }


@attrs.frozen
class Revocation:
    """What `revoke_claims` appended, and the chain's state after it."""

    identity_id: str
    reason: str
    claims: tuple[RevokedClaim, ...]
    state: ChainState

    @property
    def hint(self) -> str:
        """The next step: the revocation only counts where verifiers read the chain."""
        subjects = ", ".join(dict.fromkeys(c.subject for c in self.claims))
        return (
            f"publish the chain so verifiers see the revocation: `{REPUBLISH}`; "
            f"the proof on {subjects} can then be taken down"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "identity_id": self.identity_id,
            "reason": self.reason,
            "revoked": [c.to_json() for c in self.claims],
            "republish": REPUBLISH,
        }


def match_claims(
    state: ChainState, target: str, registry: Registry | None = None
) -> list[ClaimRecord]:
    """The claims of `state` that `target` names and that are not revoked yet, in chain order.

    `target` is a claim id, a prefix of one (at least 8 hex digits, matching
    one claim only), or a subject (`github:Alice`, normalised as everywhere).
    Raises `DecodeError` for a target that is neither, `KezError` when it
    names nothing to revoke (no such claim, or all of them revoked already).
    """
    text = target.strip()
    if ":" in text:
        subject = normalize_subject(text, registry)
        found = [r for r in state.claims.values() if r.subject == subject]
        if not found:
            raise KezError(
                f"the chain holds no claim on {subject}",
                hint="`kez sigchain show` lists the claims it holds",
            )
        live = [r for r in found if not r.revoked]
        if not live:
            raise KezError(f"every claim on {subject} is revoked already")
        return live
    prefix = text.lower()
    if len(prefix) < MIN_ID_PREFIX or len(prefix) > 64 or not _HEX.fullmatch(prefix):
        raise DecodeError(
            "give a claim id (at least 8 hex digits of it) or a subject such as github:alice",
        )
    found = [r for r in state.claims.values() if r.claim_id.startswith(prefix)]
    if not found:
        raise KezError(
            f"the chain holds no claim {prefix}",
            hint="`kez sigchain show` lists the claims it holds",
        )
    if len(found) > 1:
        raise DecodeError(
            f"{prefix} is the start of {len(found)} claim ids", hint="give more digits of the id"
        )
    record = found[0]
    if record.revoked:
        raise KezError(
            f"claim {record.claim_id} was revoked already, at seqno {record.revoked_seqno}"
        )
    return found


def revoke_claims(
    store: Keystore,
    name: str | None,
    target: str,
    *,
    signer: Callable[[], Signer],
    reason: str = "",
    registry: Registry | None = None,
) -> Revocation:
    """Append one revoke link per claim `target` names to identity `name`'s local chain.

    `signer` is called once, after the target matched: it returns the
    primary (or a device) key, prompting for a passphrase if it must.
    """
    registry = registry or store.registry
    record = store.get(name)
    path = store.chain_path(record.identity_id)
    if not path.exists():
        raise StoreError(
            f"identity {record.name!r} has no sigchain yet",
            hint="start one with `kez sigchain init`",
        )
    try:
        with path.open("rb") as fp:
            lines = list(iter_file_lines(fp))
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from exc
    if not lines:
        raise KezError(f"the chain of {record.name!r} holds no claim yet")
    builder = SigchainBuilder.resume(lines, registry=registry, keep_lines=False)
    assert builder.state is not None
    records = match_claims(builder.state, target, registry)
    key = signer()
    links: list[tuple[ClaimRecord, Link]] = [
        (r, builder.revoke(key, r.claim_id, reason)) for r in records
    ]
    state = append_links(path, [link for _, link in links], registry=registry)
    return Revocation(
        identity_id=state.identity_id,
        reason=reason,
        claims=tuple(RevokedClaim(r.claim_id, r.subject, link.seqno, link.id) for r, link in links),
        state=state,
    )
