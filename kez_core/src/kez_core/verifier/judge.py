"""One status per claim, from the chain and the proof texts a channel returned.

Order: the chain decides first (fork, revoked, expired need no network);
then reachability (`unreachable` is never turned into `invalid`); then the
texts: the chain's own claim object found → its chain status; another
claim on the same subject by this identity → judged against the chain
(revocations and rotations apply); claims by other keys → `invalid` (wrong
key); nothing usable → `not_found`.
"""

from __future__ import annotations

from datetime import datetime

from ..claim import KIND as CLAIM_KIND
from ..encoding import decode_candidates
from ..errors import KezError
from ..protocols import FetchOutcome
from ..registry import Registry
from ..sigchain import ChainState, ClaimRecord, status_of_claim, status_of_record
from ..status import ClaimCheck, Status

_PREFERENCE = [Status.VALID, Status.EXPIRED, Status.SUPERSEDED, Status.REVOKED, Status.INVALID]


def _record_result(
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


def needs_fetch(state: ChainState, record: ClaimRecord, at: datetime, fork: object | None) -> bool:
    """False when the chain alone settles the status (fork, revoked, expired)."""
    return status_of_record(state, record, at=at, fork=fork).status is Status.VALID


def judge_record(
    state: ChainState,
    record: ClaimRecord,
    outcome: FetchOutcome | None,
    *,
    at: datetime,
    fork: object | None = None,
    registry: Registry | None = None,
) -> ClaimCheck:
    chain_view = status_of_record(state, record, at=at, fork=fork)
    if chain_view.status is not Status.VALID or outcome is None:
        return chain_view
    if not outcome.reachable:
        return _record_result(
            record,
            Status.UNREACHABLE,
            outcome.reason or "the channel could not be reached",
            at,
            outcome.source,
        )
    judged: list[ClaimCheck] = []
    others = 0
    undecodable = 0
    for candidate in outcome.candidates:
        try:  # each block or token on its own: a broken one never hides a valid proof
            objects = [
                c.obj for c in decode_candidates(candidate.text, registry) if c.obj is not None
            ]
        except KezError:
            objects = []
        if not objects:
            undecodable += 1
            continue
        for obj in objects:
            if obj.kind != CLAIM_KIND:
                continue
            subject = obj.payload.get("subject")
            if obj.id == record.claim_id:
                return status_of_record(state, record, at=at, source=candidate.source)
            if subject != record.subject:
                others += 1
                continue
            judged.append(
                status_of_claim(state, obj, at=at, source=candidate.source, registry=registry)
            )
    if judged:
        best = min(
            judged, key=lambda c: _PREFERENCE.index(c.status) if c.status in _PREFERENCE else 99
        )
        if best.status is Status.VALID:
            return _record_result(
                record,
                Status.VALID,
                f"proof found (claim {(best.claim_id or '')[:12]}…, not the chain's copy but signed by this identity)",
                at,
                best.source,
            )
        return _record_result(
            record,
            best.status,
            f"proof found but {best.status.value}: {best.reason}",
            at,
            best.source,
        )
    where = outcome.source or "the channel"
    detail = []
    if others:
        detail.append(f"{others} claim(s) about other subjects")
    if undecodable:
        detail.append(f"{undecodable} text(s) that are not KEZ objects")
    extra = f" ({'; '.join(detail)})" if detail else ""
    reason = outcome.reason or f"no proof of {record.subject} at {where}"
    return _record_result(record, Status.NOT_FOUND, reason + extra, at, outcome.source)
