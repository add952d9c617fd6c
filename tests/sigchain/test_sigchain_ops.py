"""Every op through the builder, and the state a reader computes from the result."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kez_core.claim import create_claim
from kez_core.jcs import canonicalize, sha256_hex
from kez_core.sigchain import (
    OPS,
    ChainError,
    ChainFault,
    SigchainBuilder,
    accept_message,
    iter_links,
    validate_lines,
)
from kez_core.sigchain.model import ChainState
from kez_core.signed import SIGNER_FIELDS, verify_signature
from sigchain_helpers import T0, Clock, builder, make_keys


@pytest.fixture
def keys():
    return make_keys()


def test_first_link_defines_identity_and_primary(keys):
    b = builder()
    link = b.add_recovery(keys.primary, keys.recovery.key_id)
    assert (link.seqno, link.prev, link.op) == (1, None, "add_recovery")
    state = validate_lines(b.lines)
    assert state.identity_id == keys.primary.key_id
    assert state.current_primary == keys.primary.key_id
    assert state.recovery_keys == {keys.recovery.key_id}
    assert state.length == 1 and state.head == link.id


def test_link_shape_and_id(keys):
    b = builder()
    link = b.add_recovery(keys.primary, keys.recovery.key_id)
    obj = link.obj
    assert obj.kind == "link"
    assert obj.payload["type"] == "kez.link" and obj.payload["version"] == 1
    assert set(obj.payload) == {"type", "version", "seqno", "prev", "created_at", "op", "body"}
    assert obj.signature.key == keys.primary.key_id
    # the id is sha256(JCS(whole object)), and the line is exactly JCS + "\n"
    assert link.id == sha256_hex(obj.to_dict()) == obj.id
    assert link.line == canonicalize(obj.to_dict()) + b"\n"
    # links name no signer field: signature.key is the signer
    assert "link" not in SIGNER_FIELDS
    verify_signature(obj)


def test_every_op(keys):
    clock = Clock()
    b = SigchainBuilder(clock=clock)
    b.add_recovery(keys.primary, keys.recovery.key_id)
    b.add_device(keys.primary, keys.device, "laptop")
    b.add_device(keys.primary, keys.phone, "phone")  # a nostr (BIP-340) key accepts too
    c1 = create_claim(keys.primary, "github:alice", created_at=T0)
    b.claim(keys.primary, c1)
    c2 = create_claim(keys.primary, "dns:example.org", created_at=T0)
    b.claim(keys.device, c2)  # a device may add a claim the primary signed
    b.add_inbox(keys.primary, b"\x01" * 32)
    b.add_inbox(keys.phone, "x25519:" + "02" * 32)
    b.add_inbox(keys.primary, b"\x03" * 32, device=keys.device.key_id)  # primary for a device
    b.revoke(keys.phone, c2.id, "domain sold")
    b.remove_device(keys.primary, keys.device.key_id)
    b.rotate(keys.primary, keys.new)
    c3 = create_claim(keys.new, "github:alice2", created_at=T0)
    b.claim(keys.new, c3)
    ops = [link.op for link in iter_links(b.lines)]
    assert set(ops) == set(OPS)

    state = validate_lines(b.lines)
    assert state.length == 12
    assert state.identity_id == keys.primary.key_id
    assert state.current_primary == keys.new.key_id
    assert state.devices == {keys.phone.key_id: "phone"}
    assert state.recovery_keys == {keys.recovery.key_id}
    assert set(state.retired) == {keys.primary.key_id}
    retired = state.retired[keys.primary.key_id]
    assert (retired.seqno, retired.successor, retired.rotated_by) == (
        11,
        keys.new.key_id,
        keys.primary.key_id,
    )
    # inbox keys: the removed device's and the retired primary's are gone
    assert set(state.inbox_keys) == {keys.phone.key_id}
    assert state.inbox_keys[keys.phone.key_id].key == "x25519:" + "02" * 32
    assert list(state.claims) == [c1.id, c2.id, c3.id]
    r1, r2, r3 = state.claims.values()
    assert (r1.subject, r1.primary, r1.added_by, r1.seqno, r1.revoked) == (
        "github:alice",
        keys.primary.key_id,
        keys.primary.key_id,
        4,
        False,
    )
    assert (r2.added_by, r2.revoked, r2.revoked_seqno, r2.revocation_reason, r2.revoked_by) == (
        keys.device.key_id,
        True,
        9,
        "domain sold",
        keys.phone.key_id,
    )
    assert r3.primary == keys.new.key_id
    assert state.primaries() == [keys.primary.key_id, keys.new.key_id]
    assert state.role_of(keys.phone.key_id) == "device"
    assert state.role_of(keys.device.key_id) is None
    assert state.role_of(keys.primary.key_id) == "retired"
    assert [c.claim_id for c in state.active_claims()] == [c1.id, c3.id]


def test_builder_state_equals_reader_state(keys):
    b = builder()
    b.add_device(keys.primary, keys.device, "laptop")
    b.claim(keys.primary, create_claim(keys.primary, "github:alice"))
    b.add_inbox(keys.device, b"\x05" * 32)
    assert validate_lines(b.lines) == b.state


def test_inbox_replaced_per_device_and_expiry(keys):
    b = builder()
    b.add_inbox(keys.primary, b"\x01" * 32, expires_at=T0 + timedelta(days=3))
    b.add_inbox(keys.primary, b"\x02" * 32, expires_at=T0 + timedelta(days=10))
    state = validate_lines(b.lines)
    assert len(state.inbox_keys) == 1
    current = state.inbox_keys[keys.primary.key_id]
    assert current.key == "x25519:" + "02" * 32 and current.seqno == 2
    assert state.current_inbox_keys(T0 + timedelta(days=5)) == [current]
    assert state.current_inbox_keys(T0 + timedelta(days=11)) == []


def test_default_inbox_lifetime_is_a_week(keys):
    b = builder()
    link = b.add_inbox(keys.primary, b"\x01" * 32)
    assert link.body["expires_at"] == "2026-01-08T12:01:00Z"
    assert link.created_at == "2026-01-01T12:01:00Z"


def test_rotate_by_recovery_and_promotions(keys):
    b = builder()
    b.add_recovery(keys.primary, keys.recovery.key_id)
    b.add_device(keys.primary, keys.device, "laptop")
    b.rotate(keys.recovery, keys.device)  # a device promoted to primary by the recovery key
    state = validate_lines(b.lines)
    assert state.current_primary == keys.device.key_id
    assert state.devices == {}
    assert state.recovery_keys == {keys.recovery.key_id}  # a recovery key stays one after use
    assert state.retired[keys.primary.key_id].rotated_by == keys.recovery.key_id
    b.rotate(keys.recovery, keys.recovery)  # and may even take the primary role itself
    state = validate_lines(b.lines)
    assert state.current_primary == keys.recovery.key_id and state.recovery_keys == set()


def test_accept_signature_binds_chain_seqno_prev_and_key(keys):
    b = builder()
    b.add_recovery(keys.primary, keys.recovery.key_id)
    link = b.add_device(keys.primary, keys.device, "laptop")
    msg = accept_message(keys.primary.key_id, 2, link.prev, keys.device.key_id)
    assert msg == canonicalize(
        {
            "type": "kez.accept",
            "chain": keys.primary.key_id,
            "seqno": 2,
            "prev": link.prev,
            "key": keys.device.key_id,
        }
    )
    assert keys.device.alg.verify(
        keys.device.alg.parse_public(keys.device.key_id.split(":")[1]),
        msg,
        bytes.fromhex(link.body["accept"]),
    )


def test_builder_refuses_and_appends_nothing(keys):
    b = builder()
    b.add_device(keys.primary, keys.device, "laptop")
    before = (list(b.lines), b.state.length, b.state.head)
    with pytest.raises(ChainError) as info:
        b.add_device(keys.device, keys.phone, "phone")  # only the primary adds devices
    assert info.value.reason is ChainFault.SIGNER and info.value.seqno == 2
    with pytest.raises(ChainError):
        b.claim(keys.primary, create_claim(keys.stranger, "github:bob"))
    with pytest.raises(ChainError):
        b.revoke(keys.primary, "ab" * 32)
    assert (b.lines, b.state.length, b.state.head) == before
    b.add_inbox(keys.device, b"\x01" * 32)  # and it keeps working
    assert validate_lines(b.lines).length == 2


def test_builder_resume_continues_a_chain(keys):
    b = builder()
    b.add_device(keys.primary, keys.device, "laptop")
    b.add_recovery(keys.primary, keys.recovery.key_id)
    resumed = SigchainBuilder.resume(b.lines, clock=Clock(T0 + timedelta(days=1)))
    assert resumed.lines == b.lines
    link = resumed.add_inbox(keys.device, b"\x01" * 32)
    assert link.seqno == 3 and link.prev == b.state.head
    assert validate_lines(resumed.lines).length == 3


def test_created_at_never_goes_backwards_with_a_slow_clock(keys):
    b = SigchainBuilder(clock=Clock(step=timedelta(minutes=-1)))
    b.add_recovery(keys.primary, keys.recovery.key_id)
    second = b.add_device(keys.primary, keys.device, "laptop")
    assert second.created_at == b.state.last_created_at
    assert validate_lines(b.lines).length == 2


def test_removed_device_can_be_added_again(keys):
    b = builder()
    b.add_device(keys.primary, keys.device, "laptop")
    b.add_inbox(keys.device, b"\x01" * 32)
    b.remove_device(keys.primary, keys.device.key_id)
    assert b.state.devices == {} and b.state.inbox_keys == {}
    b.add_device(keys.primary, keys.device, "laptop again")  # with a fresh accept
    b.add_inbox(keys.device, b"\x02" * 32)
    state = validate_lines(b.lines)
    assert state.devices == {keys.device.key_id: "laptop again"}
    assert state.inbox_keys[keys.device.key_id].seqno == 5


def test_keep_lines_false(keys):
    b = builder(keep_lines=False)
    link = b.add_recovery(keys.primary, keys.recovery.key_id)
    assert b.lines == [] and validate_lines([link.line]).length == 1


def test_state_is_plain_attrs(keys):
    b = builder()
    b.add_recovery(keys.primary, keys.recovery.key_id)
    assert isinstance(b.state, ChainState)
