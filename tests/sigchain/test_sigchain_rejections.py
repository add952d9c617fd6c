"""Every way a chain can be wrong gives a ChainError naming the seqno and the fault."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from kez_core.claim import create_claim
from kez_core.errors import DecodeError
from kez_core.jcs import canonicalize
from kez_core.sigchain import (
    ChainError,
    ChainFault,
    ChainValidator,
    accept_signature,
    validate_lines,
)
from kez_core.signed import SignedObject
from sigchain_helpers import T0, builder, expect_chain_error, line_of, make_keys, next_link


@pytest.fixture
def keys():
    return make_keys()


@pytest.fixture
def base(keys):
    """primary + recovery + laptop device + one claim: 4 links."""
    b = builder()
    b.add_recovery(keys.primary, keys.recovery.key_id)
    b.add_device(keys.primary, keys.device, "laptop")
    claim = create_claim(keys.primary, "github:alice", created_at=T0)
    b.claim(keys.primary, claim)
    b.add_inbox(keys.device, b"\x01" * 32)
    b.claim_obj = claim
    return b


# ------------------------------------------------------------------ position


def test_bad_prev(keys, base):
    line = next_link(
        base.state,
        keys.primary,
        "add_inbox",
        {
            "key": "x25519:" + "00" * 32,
            "device": keys.primary.key_id,
            "expires_at": "2027-01-01T00:00:00Z",
        },
        prev="ab" * 32,
    )
    err = expect_chain_error(base.lines + [line], ChainFault.PREV, 5)
    assert base.state.head in str(err) and "ab" * 32 in str(err)


def test_first_link_must_have_null_prev(keys):
    line = next_link(
        None, keys.primary, "add_recovery", {"key": keys.recovery.key_id}, prev="ab" * 32
    )
    expect_chain_error([line], ChainFault.PREV, 1)


def test_seqno_gap(keys, base):
    line = next_link(base.state, keys.primary, "add_recovery", {"key": keys.new.key_id}, seqno=6)
    err = expect_chain_error(base.lines + [line], ChainFault.SEQNO, 5)
    assert "expected seqno 5, found 6" in str(err) and err.line == 5


def test_seqno_duplicate(keys, base):
    expect_chain_error(base.lines + [base.lines[-1]], ChainFault.SEQNO, 5)


def test_first_seqno_must_be_one(keys):
    line = next_link(None, keys.primary, "add_recovery", {"key": keys.recovery.key_id}, seqno=2)
    expect_chain_error([line], ChainFault.SEQNO, 1)


def test_time_going_backwards(keys, base):
    line = next_link(
        base.state, keys.primary, "add_recovery", {"key": keys.new.key_id}, created_at=T0
    )
    expect_chain_error(base.lines + [line], ChainFault.TIME, 5)


# ------------------------------------------------------------------ signatures


def test_bad_signature_changed_payload(keys, base):
    data = json.loads(base.lines[1])
    data["payload"]["body"]["name"] = "desktop"  # signed as "laptop"
    expect_chain_error([base.lines[0], json.dumps(data).encode()], ChainFault.SIGNATURE, 2)


def test_bad_signature_by_another_key(keys, base):
    # the stranger signs, but the line says the primary did
    line = next_link(base.state, keys.stranger, "add_recovery", {"key": keys.new.key_id})
    data = json.loads(line)
    data["signature"]["key"] = keys.primary.key_id
    expect_chain_error(base.lines + [json.dumps(data).encode()], ChainFault.SIGNATURE, 5)


def test_signature_alg_must_match_key(keys, base):
    line = next_link(base.state, keys.primary, "add_recovery", {"key": keys.new.key_id})
    data = json.loads(line)
    data["signature"]["alg"] = "bip340-sha256-jcs"
    expect_chain_error(base.lines + [json.dumps(data).encode()], ChainFault.SIGNATURE, 5)


def test_unknown_signature_alg(keys, base):
    line = next_link(base.state, keys.primary, "add_recovery", {"key": keys.new.key_id})
    data = json.loads(line)
    data["signature"]["alg"] = "rot13"
    expect_chain_error(base.lines + [json.dumps(data).encode()], ChainFault.SIGNATURE, 5)


# ------------------------------------------------------------------ signers


@pytest.mark.parametrize(
    ("who", "op", "body"),
    [
        ("device", "add_device", None),
        ("device", "remove_device", "device"),
        ("device", "add_recovery", "new"),
        ("device", "rotate", None),
        ("recovery", "claim", None),
        ("recovery", "revoke", None),
        ("recovery", "add_recovery", "new"),
        ("stranger", "add_recovery", "new"),
        ("stranger", "claim", None),
    ],
)
def test_signer_not_allowed(keys, base, who, op, body):
    signer = getattr(keys, who)
    bodies = {
        "add_device": {
            "device": keys.new.key_id,
            "name": "x",
            "accept": accept_signature(keys.new, keys.primary.key_id, 5, base.state.head),
        },
        "remove_device": {"device": keys.device.key_id},
        "add_recovery": {"key": keys.new.key_id},
        "rotate": {
            "new_primary": keys.new.key_id,
            "accept": accept_signature(keys.new, keys.primary.key_id, 5, base.state.head),
        },
        "claim": {"claim": create_claim(keys.primary, "github:carol").to_dict()},
        "revoke": {"claim_id": base.claim_obj.id, "reason": ""},
    }
    line = next_link(base.state, signer, op, bodies[op])
    err = expect_chain_error(base.lines + [line], ChainFault.SIGNER, 5)
    assert signer.key_id in str(err) and op in str(err)


def test_device_may_not_add_inbox_for_another_device(keys, base):
    b = base
    b.add_device(keys.primary, keys.phone, "phone")
    line = next_link(
        b.state,
        keys.phone,
        "add_inbox",
        {
            "key": "x25519:" + "00" * 32,
            "device": keys.device.key_id,
            "expires_at": "2027-01-01T00:00:00Z",
        },
    )
    expect_chain_error(b.lines + [line], ChainFault.SIGNER, 6)


def test_removed_device_may_not_sign(keys, base):
    base.remove_device(keys.primary, keys.device.key_id)
    line = next_link(
        base.state,
        keys.device,
        "claim",
        {"claim": create_claim(keys.primary, "github:carol").to_dict()},
    )
    expect_chain_error(base.lines + [line], ChainFault.SIGNER, 6)


def test_rotated_away_key_still_signing(keys, base):
    base.rotate(keys.primary, keys.new)
    line = next_link(base.state, keys.primary, "add_recovery", {"key": keys.stranger.key_id})
    err = expect_chain_error(base.lines + [line], ChainFault.ROTATED_KEY, 6)
    assert "rotated away at seqno 5" in str(err)


# ------------------------------------------------------------------ accept


def test_accept_missing(keys, base):
    line = next_link(
        base.state, keys.primary, "add_device", {"device": keys.new.key_id, "name": "x"}
    )
    expect_chain_error(base.lines + [line], ChainFault.ACCEPT, 5)


def test_accept_malformed(keys, base):
    line = next_link(
        base.state, keys.primary, "rotate", {"new_primary": keys.new.key_id, "accept": "00"}
    )
    expect_chain_error(base.lines + [line], ChainFault.ACCEPT, 5)


@pytest.mark.parametrize("wrong", ["signer", "seqno", "prev", "chain", "key"])
def test_accept_wrong(keys, base, wrong):
    chain, seqno, prev, acceptor = keys.primary.key_id, 5, base.state.head, keys.new
    if wrong == "signer":
        acceptor = keys.stranger  # a key that is not the one being added
    elif wrong == "seqno":
        seqno = 4
    elif wrong == "prev":
        prev = "00" * 32
    elif wrong == "chain":
        chain = keys.stranger.key_id
    accept = accept_signature(acceptor, chain, seqno, prev)
    if wrong == "key":  # the new key signed, but for adding another key
        from kez_core.sigchain import accept_message

        accept = keys.new.sign(accept_message(chain, seqno, prev, keys.stranger.key_id)).hex()
    line = next_link(
        base.state,
        keys.primary,
        "add_device",
        {"device": keys.new.key_id, "name": "x", "accept": accept},
    )
    expect_chain_error(base.lines + [line], ChainFault.ACCEPT, 5)


def test_accept_replayed_from_another_chain(keys):
    a = builder()
    a.add_device(keys.primary, keys.device, "laptop")
    # the same accept value in another identity's chain at the same seqno
    accept = a.state and json.loads(a.lines[0])["payload"]["body"]["accept"]
    line = next_link(
        None,
        keys.stranger,
        "add_device",
        {"device": keys.device.key_id, "name": "laptop", "accept": accept},
    )
    expect_chain_error([line], ChainFault.ACCEPT, 1)


# ------------------------------------------------------------------ malformed


@pytest.mark.parametrize(
    "bad",
    [
        b"{not json",
        b"[1,2]",
        b'"text"',
        b"\xff\xfe",
        b'{"kez":"link"}',
        b"{}",
        b'{"kez":"link","kez":"link"}',
        b"NaN",
    ],
)
def test_malformed_line_is_wrapped_with_seqno_and_line(keys, base, bad):
    lines = base.lines[:2] + [b"\n", bad + b"\n"] + base.lines[2:]
    with pytest.raises(ChainError) as info:
        validate_lines(lines)
    err = info.value
    assert err.reason is ChainFault.MALFORMED
    assert (err.seqno, err.line) == (3, 4)
    assert "seqno 3" in str(err) and "line 4" in str(err)
    assert isinstance(err.__cause__, DecodeError)


def test_duplicate_key_inside_a_valid_link(keys, base):
    line = next_link(base.state, keys.primary, "add_recovery", {"key": keys.new.key_id})
    dup = line.replace(b'"op":"add_recovery"', b'"op":"add_recovery","op":"add_recovery"')
    assert dup != line
    err = expect_chain_error(base.lines + [dup], ChainFault.MALFORMED, 5)
    assert "duplicate JSON key" in str(err)


def test_line_of_wrong_type(keys, base):
    expect_chain_error(base.lines + [42], ChainFault.MALFORMED, 5)


def test_not_a_link(keys, base):
    claim = create_claim(keys.primary, "github:alice")
    expect_chain_error(base.lines + [line_of(claim)], ChainFault.MALFORMED, 5)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seqno", "5"),
        ("seqno", True),
        ("seqno", 0),
        ("prev", "AB" * 32),
        ("prev", 7),
        ("created_at", "2026-01-01"),
        ("created_at", "２０２６-01-02T00:00:00Z"),
        ("op", 3),
        ("body", []),
    ],
)
def test_wrong_field_types(keys, base, field, value):
    state = base.state
    payload = {
        "seqno": 5,
        "prev": state.head,
        "created_at": "2026-01-02T00:00:00Z",
        "op": "add_recovery",
        "body": {"key": keys.new.key_id},
    }
    payload[field] = value
    from kez_core.signed import sign

    obj = sign("link", payload, keys.primary)
    expect_chain_error(base.lines + [line_of(obj)], ChainFault.MALFORMED, 5)


def test_missing_payload_field(keys, base):
    from kez_core.signed import sign

    obj = sign(
        "link",
        {
            "seqno": 5,
            "prev": base.state.head,
            "op": "add_recovery",
            "body": {"key": keys.new.key_id},
        },
        keys.primary,
    )
    expect_chain_error(base.lines + [line_of(obj)], ChainFault.MALFORMED, 5)


def test_oversized_line(keys, base):
    expect_chain_error(base.lines + [b" " * 70_000 + b"{}"], ChainFault.MALFORMED, 5)


def test_unknown_op(keys, base):
    line = next_link(base.state, keys.primary, "add_admin", {"key": keys.new.key_id})
    expect_chain_error(base.lines + [line], ChainFault.UNKNOWN_OP, 5)


def test_empty_chain():
    with pytest.raises(ChainError) as info:
        validate_lines([b"", b"\n", "  \n"])
    assert info.value.reason is ChainFault.EMPTY


def test_blank_lines_are_skipped(keys, base):
    lines = [b"\n"] + base.lines[:2] + [b"   \n"] + base.lines[2:] + [b"\n"]
    assert validate_lines(lines).length == 4


def test_unknown_payload_fields_are_kept_and_signed(keys, base):
    line = next_link(
        base.state,
        keys.primary,
        "add_recovery",
        {"key": keys.new.key_id},
        extra={"note": "from the future"},
    )
    state = validate_lines(base.lines + [line])
    assert state.length == 5


def test_errors_carry_link_id_and_serialise(keys, base):
    line = next_link(base.state, keys.primary, "add_recovery", {"key": keys.recovery.key_id})
    err = expect_chain_error(base.lines + [line], ChainFault.BODY, 5)
    assert err.link_id == SignedObject.from_dict(json.loads(line)).id
    data = err.to_dict()
    assert data["reason"] == "body" and data["seqno"] == 5 and data["error"] == "chain_error"


# ------------------------------------------------------------------ body rules


def _body_error(keys, base, op, body, signer=None):
    line = next_link(base.state, signer or keys.primary, op, body)
    return expect_chain_error(base.lines + [line], ChainFault.BODY, 5)


def test_revoke_unknown_claim(keys, base):
    err = _body_error(keys, base, "revoke", {"claim_id": "ab" * 32, "reason": "x"})
    assert "no earlier link added" in str(err)


def test_revoke_twice(keys, base):
    base.revoke(keys.primary, base.claim_obj.id, "first")
    line = next_link(
        base.state, keys.primary, "revoke", {"claim_id": base.claim_obj.id, "reason": "again"}
    )
    expect_chain_error(base.lines + [line], ChainFault.BODY, 6)


def test_revoke_needs_reason_string(keys, base):
    _body_error(keys, base, "revoke", {"claim_id": base.claim_obj.id, "reason": None})


def test_claim_by_another_identity(keys, base):
    err = _body_error(
        keys, base, "claim", {"claim": create_claim(keys.stranger, "github:bob").to_dict()}
    )
    assert "primary at this seqno" in str(err)


def test_claim_with_bad_signature(keys, base):
    claim = create_claim(keys.primary, "github:bob").to_dict()
    claim["payload"]["subject"] = "github:mallory"
    err = _body_error(keys, base, "claim", {"claim": claim})
    assert "does not verify" in str(err)


def test_claim_not_a_claim(keys, base):
    _body_error(keys, base, "claim", {"claim": {"kez": "claim"}})


def test_claim_added_twice(keys, base):
    _body_error(keys, base, "claim", {"claim": base.claim_obj.to_dict()})


def test_claim_by_old_primary_after_rotation(keys, base):
    base.rotate(keys.primary, keys.new)
    old = create_claim(keys.primary, "github:bob")
    line = next_link(base.state, keys.new, "claim", {"claim": old.to_dict()})
    expect_chain_error(base.lines + [line], ChainFault.BODY, 6)


def test_add_device_twice(keys, base):
    accept = accept_signature(keys.device, keys.primary.key_id, 5, base.state.head)
    _body_error(
        keys, base, "add_device", {"device": keys.device.key_id, "name": "x", "accept": accept}
    )


def test_add_device_that_is_the_primary(keys, base):
    accept = accept_signature(keys.primary, keys.primary.key_id, 5, base.state.head)
    _body_error(
        keys, base, "add_device", {"device": keys.primary.key_id, "name": "x", "accept": accept}
    )


@pytest.mark.parametrize("name", ["", "x" * 65, 5])
def test_add_device_bad_name(keys, base, name):
    accept = accept_signature(keys.new, keys.primary.key_id, 5, base.state.head)
    _body_error(
        keys, base, "add_device", {"device": keys.new.key_id, "name": name, "accept": accept}
    )


@pytest.mark.parametrize("device", ["ed25519:XYZ", "ed25519:" + "AB" * 32, 7, "npub1xyz"])
def test_add_device_bad_key_id(keys, base, device):
    _body_error(keys, base, "add_device", {"device": device, "name": "x", "accept": "00" * 64})


def test_remove_unknown_device(keys, base):
    _body_error(keys, base, "remove_device", {"device": keys.stranger.key_id})


def test_add_recovery_twice(keys, base):
    _body_error(keys, base, "add_recovery", {"key": keys.recovery.key_id})


def test_retired_key_gets_no_role_again(keys, base):
    base.rotate(keys.primary, keys.new)
    line = next_link(base.state, keys.new, "add_recovery", {"key": keys.primary.key_id})
    expect_chain_error(base.lines + [line], ChainFault.BODY, 6)
    accept = accept_signature(keys.primary, keys.primary.key_id, 6, base.state.head)
    line = next_link(
        base.state, keys.new, "rotate", {"new_primary": keys.primary.key_id, "accept": accept}
    )
    expect_chain_error(base.lines + [line], ChainFault.BODY, 6)


def test_rotate_to_self(keys, base):
    accept = accept_signature(keys.primary, keys.primary.key_id, 5, base.state.head)
    _body_error(keys, base, "rotate", {"new_primary": keys.primary.key_id, "accept": accept})


@pytest.mark.parametrize(
    "body",
    [
        {"key": "x25519:" + "zz" * 32, "device": None, "expires_at": "2027-01-01T00:00:00Z"},
        {"key": "ed25519:" + "00" * 32, "device": None, "expires_at": "2027-01-01T00:00:00Z"},
        {"key": "x25519:" + "00" * 32, "device": "stranger", "expires_at": "2027-01-01T00:00:00Z"},
        {"key": "x25519:" + "00" * 32, "device": None, "expires_at": "2026-01-02T00:00:00Z"},
        {"key": "x25519:" + "00" * 32, "device": None, "expires_at": "soon"},
        {"key": "x25519:" + "00" * 32, "device": ["x"], "expires_at": "2027-01-01T00:00:00Z"},
    ],
)
def test_add_inbox_rules(keys, base, body):
    body = dict(body)
    if body["device"] is None:
        body["device"] = keys.primary.key_id
    elif body["device"] == "stranger":
        body["device"] = keys.stranger.key_id
    _body_error(keys, base, "add_inbox", body)


def test_unknown_body_field(keys, base):
    err = _body_error(keys, base, "add_recovery", {"key": keys.new.key_id, "role": "admin"})
    assert "unknown field" in str(err)


def test_missing_body_field(keys, base):
    _body_error(keys, base, "revoke", {"claim_id": base.claim_obj.id})


def test_validator_stops_at_first_fault_and_keeps_the_valid_prefix(keys, base):
    v = ChainValidator()
    for line in base.lines:
        v.feed(line)
    head = v.state.head
    with pytest.raises(ChainError):
        v.feed(base.lines[0])
    assert v.state.length == 4 and v.state.head == head


def test_feed_object(keys, base):
    v = ChainValidator()
    for line in base.lines:
        v.feed_object(SignedObject.from_dict(json.loads(line)))
    assert v.result() == validate_lines(base.lines)


def test_feed_object_checks_the_envelope(keys, base):
    from kez_core.signed import Signature

    obj = SignedObject.from_dict(json.loads(base.lines[0]))
    bad = SignedObject(obj.kind, obj.payload, Signature(obj.signature.alg, obj.signature.key, "zz"))
    with pytest.raises(ChainError) as info:
        ChainValidator().feed_object(bad)
    assert info.value.reason is ChainFault.MALFORMED and info.value.seqno == 1


def test_non_canonical_input_is_accepted(keys, base):
    pretty = [
        json.dumps(json.loads(line), indent=2, sort_keys=False).replace("\n", " ").encode() + b"\n"
        for line in base.lines
    ]
    assert validate_lines(pretty).head == base.state.head
    assert canonicalize(json.loads(pretty[0])) + b"\n" == base.lines[0]


def test_str_lines_and_crlf(keys, base):
    lines = [line.decode().rstrip("\n") + "\r\n" for line in base.lines]
    assert validate_lines(lines).head == base.state.head


def test_signature_over_non_canonical_bytes_is_rejected(keys, base):
    # a signer that signs its own (non-JCS) serialisation does not make a valid link
    state = base.state
    payload = {
        "type": "kez.link",
        "version": 1,
        "seqno": 5,
        "prev": state.head,
        "created_at": "2026-01-02T00:00:00Z",
        "op": "add_recovery",
        "body": {"key": keys.new.key_id},
    }
    text = json.dumps(payload)
    obj = {
        "kez": "link",
        "payload": payload,
        "signature": {
            "alg": "ed25519-sha512-jcs",
            "key": keys.primary.key_id,
            "sig": keys.primary.sign(text.encode()).hex(),
        },
    }
    expect_chain_error(base.lines + [json.dumps(obj).encode()], ChainFault.SIGNATURE, 5)


def test_line_numbers_count_blank_lines(keys, base):
    lines = [b"\n", b"\n"] + base.lines + [base.lines[0]]
    err = expect_chain_error(lines, ChainFault.SEQNO, 5)
    assert err.line == 7


def test_inbox_expiry_equal_to_created_is_rejected(keys, base):
    when = T0 + timedelta(days=1)
    line = next_link(
        base.state,
        keys.primary,
        "add_inbox",
        {
            "key": "x25519:" + "00" * 32,
            "device": keys.primary.key_id,
            "expires_at": "2026-01-02T12:00:00Z",
        },
        created_at=when,
    )
    expect_chain_error(base.lines + [line], ChainFault.BODY, 5)
