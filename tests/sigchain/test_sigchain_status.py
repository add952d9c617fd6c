"""Claim statuses derived from a chain: valid, revoked, expired, superseded, invalid, fork."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kez_core.claim import create_claim
from kez_core.sigchain import (
    Fork,
    claim_statuses,
    status_of_claim,
    status_of_record,
    validate_lines,
)
from kez_core.status import Status, to_json
from sigchain_helpers import T0, builder, make_keys

DAY = timedelta(days=1)


@pytest.fixture
def chain():
    keys = make_keys()
    b = builder()
    b.add_device(keys.primary, keys.device, "laptop")  # 1
    plain = create_claim(keys.primary, "github:alice", created_at=T0)
    b.claim(keys.primary, plain)  # 2
    short = create_claim(keys.primary, "dns:example.org", created_at=T0, expires_in=3 * DAY)
    b.claim(keys.primary, short)  # 3
    gone = create_claim(keys.primary, "bluesky:alice.bsky.social", created_at=T0)
    b.claim(keys.device, gone)  # 4
    b.revoke(keys.device, gone.id, "left bluesky")  # 5
    b.rotate(keys.primary, keys.new, at=T0 + 10 * DAY)  # 6
    return keys, b, validate_lines(b.lines), {"plain": plain, "short": short, "gone": gone}


def test_statuses_of_chain_claims(chain):
    _keys, _b, state, c = chain
    s = claim_statuses(state, at=T0 + DAY)
    assert [s[x.id].status for x in c.values()] == [Status.VALID, Status.VALID, Status.REVOKED]
    assert s[c["gone"].id].reason == "revoked at seqno 5 (2026-01-01T12:05:00Z): left bluesky"
    assert s[c["plain"].id].subject == "github:alice"
    s = claim_statuses(state, at=T0 + 3 * DAY)
    assert s[c["short"].id].status is Status.EXPIRED  # expiry at exactly expires_at
    assert "expired at 2026-01-04T12:00:00Z" in s[c["short"].id].reason
    # revoked wins over expired
    assert s[c["gone"].id].status is Status.REVOKED


def test_status_results_serialise(chain):
    _keys, _b, state, c = chain
    data = to_json(claim_statuses(state, at=T0 + DAY)[c["plain"].id])
    assert data["status"] == "valid" and data["checked_at"] == "2026-01-02T12:00:00Z"


def test_found_copy_of_a_chain_claim(chain):
    _keys, _b, state, c = chain
    assert (
        status_of_claim(state, c["plain"], at=T0 + DAY, source="https://gist").status
        is Status.VALID
    )
    r = status_of_claim(state, c["gone"], at=T0 + DAY)
    assert r.status is Status.REVOKED and r.claim_id == c["gone"].id
    assert status_of_claim(state, c["short"], at=T0 + 5 * DAY).status is Status.EXPIRED


def test_superseded_signed_by_old_primary_after_rotation(chain):
    keys, _b, state, _c = chain
    late = create_claim(keys.primary, "github:mallory", created_at=T0 + 11 * DAY)
    r = status_of_claim(state, late, at=T0 + 12 * DAY, source="nostr")
    assert r.status is Status.SUPERSEDED
    assert "rotated away at seqno 6" in r.reason and r.source == "nostr"
    at_rotation = create_claim(keys.primary, "github:mallory", created_at=T0 + 10 * DAY)
    assert status_of_claim(state, at_rotation, at=T0 + 12 * DAY).status is Status.SUPERSEDED


def test_old_primary_claim_before_rotation_not_in_chain_is_valid(chain):
    keys, _b, state, _c = chain
    early = create_claim(keys.primary, "github:alice-alt", created_at=T0 + 9 * DAY)
    r = status_of_claim(state, early, at=T0 + 12 * DAY)
    assert r.status is Status.VALID and "not in the chain" in r.reason


def test_current_primary_claim_not_in_chain(chain):
    keys, _b, state, _c = chain
    fresh = create_claim(keys.new, "github:alice", created_at=T0 + 11 * DAY)
    assert status_of_claim(state, fresh, at=T0 + 12 * DAY).status is Status.VALID
    soon = create_claim(keys.new, "github:alice", created_at=T0 + 11 * DAY, expires_in=DAY)
    assert status_of_claim(state, soon, at=T0 + 13 * DAY).status is Status.EXPIRED


def test_other_copy_of_a_revoked_subject_is_revoked(chain):
    keys, _b, state, _c = chain
    other = create_claim(keys.new, "bluesky:alice.bsky.social", created_at=T0 + 11 * DAY)
    r = status_of_claim(state, other, at=T0 + 12 * DAY)
    assert (
        r.status is Status.REVOKED and "revoked its claims on bluesky:alice.bsky.social" in r.reason
    )


def test_claim_of_another_identity_is_invalid(chain):
    keys, _b, state, _c = chain
    r = status_of_claim(
        state, create_claim(keys.stranger, "github:alice", created_at=T0), at=T0 + DAY
    )
    assert r.status is Status.INVALID and "never been a primary" in r.reason


def test_forged_claim_is_invalid(chain):
    _keys, _b, state, c = chain
    from kez_core.signed import SignedObject

    data = c["plain"].to_dict()
    data["payload"]["subject"] = "github:mallory"
    r = status_of_claim(state, SignedObject.from_dict(data), at=T0 + DAY)
    assert r.status is Status.INVALID


def test_fork_overrides(chain):
    _keys, _b, state, c = chain
    fork = Fork(3, ("a" * 64, "b" * 64), ((0,), (1,)))
    s = claim_statuses(state, at=T0 + DAY, fork=fork)
    assert {r.status for r in s.values()} == {Status.FORK}
    assert "a" * 64 in s[c["plain"].id].reason and "seqno 3" in s[c["plain"].id].reason
    assert status_of_claim(state, c["plain"], at=T0 + DAY, fork=fork).status is Status.FORK
    rec = state.claims[c["plain"].id]
    assert status_of_record(state, rec, at=T0 + DAY, fork=fork).status is Status.FORK
