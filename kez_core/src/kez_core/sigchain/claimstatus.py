"""What the chain says about a claim: `valid`, `revoked`, `expired`, `superseded`, `invalid`, `fork`.

`claim_statuses(state)` judges every claim the chain added.
`status_of_claim(state, obj)` judges a claim object found anywhere (a gist, a
DNS record, a nostr event) against the chain: its revocations and rotations
apply to it even though the chain may not hold that very object.

Order of precedence (the first that applies wins):
`fork` (the caller found conflicting copies) → `invalid` (shape, signature,
dated in the future, or not signed by a key that ever was this identity's
primary) → `revoked` → `superseded` (signed by a rotated-away primary and not
in the chain, with created_at at or after the rotation) → `expired` → `valid`.

A claim object the chain does not hold is `revoked` when the chain has claims
on the same subject and has revoked all of them: revoking says "this account
is no longer me", whichever copy of the claim a reader found.
"""

from __future__ import annotations

from datetime import datetime

from ..claim import check_claim
from ..errors import KezError
from ..registry import Registry
from ..signed import SignedObject
from ..status import ClaimCheck, Status
from ..timefmt import now, parse_time
from .model import ChainState, ClaimRecord


def _record_check(
    record: ClaimRecord, status: Status, reason: str, at: datetime, source: str
) -> ClaimCheck:
    return ClaimCheck(
        status,
        reason,
        at,
        source,
        primary=record.primary,
        subject=record.subject,
        claim_id=record.claim_id,
        created_at=record.created_at,
        expires_at=record.expires_at,
    )


def _fork_reason(fork: object) -> str:
    seqno = getattr(fork, "seqno", "?")
    ids = ", ".join(getattr(fork, "link_ids", ()))
    return f"the chain has conflicting copies at seqno {seqno} (links {ids})"


def status_of_record(
    state: ChainState,
    record: ClaimRecord,
    *,
    at: datetime | None = None,
    source: str = "",
    fork: object | None = None,
) -> ClaimCheck:
    """The status of a claim the chain added (its signature was checked when the chain was)."""
    at = at or now()
    if fork is not None:
        return _record_check(record, Status.FORK, _fork_reason(fork), at, source)
    if record.revoked:
        why = f": {record.revocation_reason}" if record.revocation_reason else ""
        return _record_check(
            record,
            Status.REVOKED,
            f"revoked at seqno {record.revoked_seqno} ({record.revoked_at}){why}",
            at,
            source,
        )
    if record.expires_at is not None and parse_time(record.expires_at) <= at:
        return _record_check(record, Status.EXPIRED, f"expired at {record.expires_at}", at, source)
    note = ""
    retired = state.retired.get(record.primary)
    if retired is not None:
        note = f"; its key was rotated away later (seqno {retired.seqno}), the claim stays valid"
    return _record_check(
        record,
        Status.VALID,
        f"added at seqno {record.seqno}, signed by {record.primary}{note}",
        at,
        source,
    )


def claim_statuses(
    state: ChainState, *, at: datetime | None = None, fork: object | None = None
) -> dict[str, ClaimCheck]:
    """claim id -> status of every claim in the chain, in chain order."""
    at = at or now()
    return {
        cid: status_of_record(state, rec, at=at, fork=fork) for cid, rec in state.claims.items()
    }


def status_of_claim(
    state: ChainState,
    obj: SignedObject,
    *,
    at: datetime | None = None,
    source: str = "",
    fork: object | None = None,
    registry: Registry | None = None,
) -> ClaimCheck:
    """Judge a claim object found anywhere against the chain's revocations and rotations."""
    at = at or now()
    base = check_claim(obj, registry=registry, at=at, source=source)
    if base.status is Status.INVALID:
        return base

    def verdict(status: Status, reason: str) -> ClaimCheck:
        return ClaimCheck(
            status,
            reason,
            at,
            source,
            primary=base.primary,
            subject=base.subject,
            claim_id=base.claim_id,
            created_at=base.created_at,
            expires_at=base.expires_at,
        )

    if fork is not None:
        return verdict(Status.FORK, _fork_reason(fork))
    primary = base.primary or ""
    record = state.claims.get(base.claim_id or "")
    if record is not None:
        return status_of_record(state, record, at=at, source=source)
    retired = state.retired.get(primary)
    if primary != state.current_primary and retired is None:
        return verdict(
            Status.INVALID,
            f"signed by {primary}, which has never been a primary of identity {state.identity_id}",
        )
    same_subject = [r for r in state.claims.values() if r.subject == base.subject]
    if same_subject and all(r.revoked for r in same_subject):
        last = max(same_subject, key=lambda r: r.revoked_seqno or 0)
        return verdict(
            Status.REVOKED,
            f"not in the chain, and the chain revoked its claims on {base.subject} "
            f"(last at seqno {last.revoked_seqno})",
        )
    if retired is not None:
        try:
            created = parse_time(base.created_at)
            rotated = parse_time(retired.rotated_at)
        except KezError:  # pragma: no cover - check_claim already read both
            return verdict(Status.INVALID, "unreadable created_at")
        if created >= rotated:
            return verdict(
                Status.SUPERSEDED,
                f"signed by {primary} at {base.created_at}, after that key was rotated away at "
                f"seqno {retired.seqno} ({retired.rotated_at}); the primary is now {state.current_primary}",
            )
    if base.status is Status.EXPIRED:
        return verdict(Status.EXPIRED, base.reason)
    where = "not in the chain"
    if retired is not None:
        where += f"; made before its key was rotated away at seqno {retired.seqno}"
    return verdict(Status.VALID, f"signed by {primary} ({where})")
