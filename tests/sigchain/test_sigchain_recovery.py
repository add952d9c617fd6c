"""Losing the primary key: the recovery key rotates to a new primary, life goes on."""

from __future__ import annotations

from datetime import timedelta

from kez_core.claim import create_claim
from kez_core.sigchain import ChainFault, claim_statuses, status_of_claim, validate_lines
from kez_core.status import Status
from sigchain_helpers import T0, builder, expect_chain_error, make_keys, next_link


def test_recovery_after_losing_the_primary():
    keys = make_keys()
    b = builder()
    b.add_recovery(keys.primary, keys.recovery.key_id)  # 1
    before = create_claim(keys.primary, "github:alice", created_at=T0)
    b.claim(keys.primary, before)  # 2
    b.add_device(keys.primary, keys.device, "laptop")  # 3

    # The primary key is lost: from here on it is simply never used by its owner.
    rotate = b.rotate(keys.recovery, keys.new)  # 4, signed by the recovery key
    assert rotate.signer == keys.recovery.key_id
    after = create_claim(keys.new, "dns:example.org", created_at=T0 + timedelta(days=1))
    b.claim(keys.new, after)  # 5, the new primary adds a claim

    state = validate_lines(b.lines)
    assert state.identity_id == keys.primary.key_id  # the identity survives the rotation
    assert state.current_primary == keys.new.key_id
    assert state.retired[keys.primary.key_id].rotated_by == keys.recovery.key_id
    assert state.devices == {keys.device.key_id: "laptop"}  # devices stay until removed

    at = T0 + timedelta(days=2)
    statuses = claim_statuses(state, at=at)
    assert statuses[before.id].status is Status.VALID  # signed before the rotation: still valid
    assert "rotated away later" in statuses[before.id].reason
    assert statuses[after.id].status is Status.VALID

    # Whoever holds the lost key cannot extend the chain ...
    line = next_link(
        state,
        keys.primary,
        "add_recovery",
        {"key": keys.stranger.key_id},
        created_at=T0 + timedelta(days=3),
    )
    err = expect_chain_error(b.lines + [line], ChainFault.ROTATED_KEY, 6)
    assert keys.primary.key_id in str(err)
    # ... nor revoke claims, nor rotate back
    line = next_link(
        state,
        keys.primary,
        "revoke",
        {"claim_id": after.id, "reason": "mine now"},
        created_at=T0 + timedelta(days=3),
    )
    expect_chain_error(b.lines + [line], ChainFault.ROTATED_KEY, 6)

    # ... and a claim it signs after the rotation, published anywhere, is superseded.
    forged = create_claim(keys.primary, "github:mallory", created_at=T0 + timedelta(days=3))
    verdict = status_of_claim(state, forged, at=T0 + timedelta(days=3, minutes=1))
    assert verdict.status is Status.SUPERSEDED
    assert "seqno 4" in verdict.reason

    # The new primary keeps working normally, with the chain as its owner left it.
    b.revoke(keys.new, before.id, "account closed")
    b.add_inbox(keys.device, b"\x09" * 32)
    state = validate_lines(b.lines)
    assert state.length == 7
    assert claim_statuses(state, at=at)[before.id].status is Status.REVOKED
