"""`kez claim revoke` and its core service `kez_core.revocation` (issue 16 §4)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kez_core.errors import DecodeError, KezError
from kez_core.revocation import REPUBLISH, match_claims, revoke_claims
from kez_core.sigchain import ChainState, ClaimRecord


def _chain(kez, *subjects):
    assert kez("identity", "new", "--no-passphrase").exit_code == 0
    assert kez("sigchain", "init").exit_code == 0
    return [kez("sigchain", "add", s, "--json").json() for s in subjects]


def _statuses(kez):
    return {c["claim_id"]: c["status"] for c in kez("sigchain", "show", "--json").json()["claims"]}


def test_revoke_by_subject_revokes_every_live_claim_on_it_and_says_to_republish(kez):
    a1, a2, dns = _chain(kez, "github:alice", "GitHub:Alice", "dns:example.org")
    result = kez("claim", "revoke", "github:ALICE", "--reason", "account sold", "--json")
    assert result.exit_code == 0, result.stderr
    done = result.json()
    assert [c["claim_id"] for c in done["revoked"]] == [a1["claim_id"], a2["claim_id"]]
    assert [c["seqno"] for c in done["revoked"]] == [4, 5]
    assert done["reason"] == "account sold" and done["republish"] == REPUBLISH
    assert _statuses(kez) == {
        a1["claim_id"]: "revoked",
        a2["claim_id"]: "revoked",
        dns["claim_id"]: "valid",
    }
    again = kez("claim", "revoke", "github:alice")
    assert again.exit_code == 3 and "revoked already" in again.stderr


def test_revoke_by_id_prefix_in_text_mode_prints_the_hint(kez):
    gh, dns = _chain(kez, "github:alice", "dns:example.org")
    result = kez("claim", "revoke", dns["claim_id"][:10].upper())
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("revoked  dns:example.org") and dns["claim_id"] in result.stdout
    assert REPUBLISH in result.stderr and "dns:example.org" in result.stderr
    assert _statuses(kez) == {gh["claim_id"]: "valid", dns["claim_id"]: "revoked"}
    shown = kez("sigchain", "show", "--json").json()
    assert shown["length"] == 3


@pytest.mark.parametrize(
    ("target", "code", "words"),
    [
        ("github:bob", 3, "no claim on github:bob"),
        ("abcdef", 3, "at least 8 hex digits"),
        ("not-an-id", 3, "at least 8 hex digits"),
        ("0" * 64, 3, "holds no claim"),
    ],
)
def test_targets_that_name_nothing_are_typed_errors_and_append_nothing(kez, target, code, words):
    _chain(kez, "github:alice")
    result = kez("claim", "revoke", target)
    assert result.exit_code == code and words in result.stderr and "Traceback" not in result.stderr
    assert kez("sigchain", "show", "--json").json()["length"] == 1


def test_no_chain_is_a_store_error(kez):
    kez("identity", "new", "--no-passphrase")
    result = kez("claim", "revoke", "github:alice")
    assert result.exit_code == 4 and "kez sigchain init" in result.stderr


def test_sigchain_revoke_takes_an_id_and_shares_the_rules(kez):
    (gh,) = _chain(kez, "github:alice")
    by_subject = kez("sigchain", "revoke", "github:alice")
    assert by_subject.exit_code == 2 and "kez claim revoke" in by_subject.stderr
    done = kez("sigchain", "revoke", gh["claim_id"][:8], "--json").json()
    assert done["claim_id"] == gh["claim_id"] and done["op"] == "revoke" and done["seqno"] == 2
    assert kez("sigchain", "revoke", gh["claim_id"]).exit_code == 3


def test_the_key_is_asked_for_only_after_the_target_matched(kez, kez_home):
    from kez_core.keystore import Keystore

    _chain(kez, "github:alice")
    asked = []

    def signer():
        asked.append(True)
        raise AssertionError("must not be called")

    with pytest.raises(KezError):
        revoke_claims(Keystore(), None, "github:bob", signer=signer)
    assert asked == []


# ------------------------------------------------------- matching, offline


def _record(claim_id: str, subject: str, revoked: int | None = None) -> ClaimRecord:
    return ClaimRecord(
        claim_id=claim_id,
        subject=subject,
        primary="ed25519:" + "a" * 64,
        added_by="x",
        seqno=1,
        added_at="2026-01-01T00:00:00Z",
        created_at="2026-01-01T00:00:00Z",
        expires_at=None,
        revoked_seqno=revoked,
    )


def _state(*records: ClaimRecord) -> ChainState:
    return ChainState(
        identity_id="ed25519:" + "a" * 64,
        current_primary="ed25519:" + "a" * 64,
        head="0" * 64,
        length=len(records),
        last_created_at="2026-01-01T00:00:00Z",
        claims={r.claim_id: r for r in records},
    )


def test_an_ambiguous_prefix_is_refused():
    state = _state(
        _record("abcdef01" + "0" * 56, "github:a"), _record("abcdef01" + "1" * 56, "github:b")
    )
    with pytest.raises(DecodeError, match="start of 2 claim ids"):
        match_claims(state, "abcdef01")
    assert [r.subject for r in match_claims(state, "abcdef011")] == ["github:b"]


def test_a_revoked_id_is_refused_and_a_subject_skips_revoked_claims():
    state = _state(_record("1" * 64, "github:a", revoked=3), _record("2" * 64, "github:a"))
    with pytest.raises(KezError, match="revoked already, at seqno 3"):
        match_claims(state, "1" * 64)
    assert [r.claim_id for r in match_claims(state, "github:a")] == ["2" * 64]


@settings(max_examples=300, deadline=None, database=None)
@given(target=st.text(max_size=120))
def test_any_target_text_is_a_match_or_a_typed_error(target):
    state = _state(_record("1" * 64, "github:a"), _record("2" * 64, "dns:example.org"))
    try:
        found = match_claims(state, target)
    except KezError:  # DecodeError is one, too
        return
    assert found and all(not r.revoked for r in found)


@settings(max_examples=100, deadline=None, database=None)
@given(claim_id=st.text("0123456789abcdef", min_size=64, max_size=64), cut=st.integers(8, 64))
def test_any_unique_prefix_finds_its_claim(claim_id, cut):
    state = _state(_record(claim_id, "github:a"))
    assert match_claims(state, claim_id[:cut].upper())[0].claim_id == claim_id
    json.dumps([r.claim_id for r in match_claims(state, claim_id[:cut])])
