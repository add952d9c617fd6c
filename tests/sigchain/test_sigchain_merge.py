"""Merging copies of a chain: prefixes extend, conflicting links are a fork."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from kez_core.claim import create_claim
from kez_core.sigchain import ChainError, ChainFault, SigchainBuilder, merge_copies, validate_lines
from kez_core.status import Status
from sigchain_helpers import T0, Clock, builder, make_keys


@pytest.fixture
def keys():
    return make_keys()


@pytest.fixture
def chain(keys):
    b = builder()
    b.add_recovery(keys.primary, keys.recovery.key_id)
    b.add_device(keys.primary, keys.device, "laptop")
    b.claim(keys.primary, create_claim(keys.primary, "github:alice", created_at=T0))
    b.add_inbox(keys.device, b"\x01" * 32)
    b.add_inbox(keys.primary, b"\x02" * 32)
    return b


def test_prefix_merge_longer_wins(chain):
    full = chain.lines
    result = merge_copies([full[:2], full, full[:4], []])
    assert result.fork is None and result.status is Status.VALID
    assert result.winner == 1
    assert result.lines == tuple(full)
    assert result.state == validate_lines(full)
    assert [c.valid_links for c in result.copies] == [2, 5, 4, 0]
    assert all(c.error is None for c in result.copies)


def test_identical_copies(chain):
    result = merge_copies([chain.lines, list(chain.lines)])
    assert result.winner == 0 and result.state.length == 5


def test_non_canonical_copy_merges_with_canonical(chain):
    pretty = [json.dumps(json.loads(x), indent=1).replace("\n", "").encode() for x in chain.lines]
    result = merge_copies([pretty[:3], chain.lines])
    assert result.fork is None and result.lines == tuple(chain.lines)


def _fork(keys, chain, at=3):
    """Two valid continuations of the first `at - 1` links."""
    other = SigchainBuilder.resume(chain.lines[: at - 1], clock=Clock(T0 + timedelta(days=2)))
    other.add_recovery(keys.primary, keys.new.key_id)
    other.add_inbox(keys.primary, b"\x07" * 32)
    return other


def test_fork_names_seqno_and_both_ids(keys, chain):
    other = _fork(keys, chain)
    ids_a = [validate_lines(chain.lines[:i]).head for i in range(1, 6)]
    ids_b = [validate_lines(other.lines[:i]).head for i in range(1, 5)]
    result = merge_copies([chain.lines, other.lines])
    assert result.status is Status.FORK
    fork = result.fork
    assert fork.seqno == 3
    assert set(fork.link_ids) == {ids_a[2], ids_b[2]}
    assert ids_a[2] in fork.reason and ids_b[2] in fork.reason
    holders = dict(zip(fork.link_ids, fork.copies, strict=True))
    assert holders[ids_a[2]] == (0,) and holders[ids_b[2]] == (1,)
    # the state is what every copy agrees on
    assert result.state.length == 2 and result.state.head == ids_a[1]
    assert result.lines == tuple(chain.lines[:2]) and result.winner is None


def test_fork_is_found_with_a_prefix_copy_too(keys, chain):
    other = _fork(keys, chain, at=4)
    result = merge_copies([chain.lines[:2], other.lines, chain.lines])
    assert result.fork.seqno == 4
    holders = dict(zip(result.fork.link_ids, result.fork.copies, strict=True))
    assert holders[validate_lines(chain.lines[:4]).head] == (2,)
    assert holders[validate_lines(other.lines[:4]).head] == (1,)
    assert result.state.length == 3


def test_earliest_fork_is_reported(keys, chain):
    late = _fork(keys, chain, at=5)
    early = _fork(keys, chain, at=2)
    result = merge_copies([late.lines, chain.lines, early.lines])
    assert result.fork.seqno == 2
    assert len(result.fork.link_ids) == 2
    assert sorted(len(c) for c in result.fork.copies) == [1, 2]  # chain and late agree at seqno 2


def test_fork_at_seqno_one_same_identity(keys):
    a, b = builder(), builder()
    a.add_recovery(keys.primary, keys.recovery.key_id)
    b.add_recovery(keys.primary, keys.new.key_id)
    result = merge_copies([a.lines, b.lines])
    assert result.fork.seqno == 1 and result.state is None and result.lines == ()


def test_different_identities_are_an_error(keys, chain):
    other = builder()
    other.add_recovery(keys.stranger, keys.recovery.key_id)
    with pytest.raises(ChainError) as info:
        merge_copies([chain.lines, other.lines])
    assert info.value.reason is ChainFault.IDENTITY
    assert keys.primary.key_id in str(info.value) and keys.stranger.key_id in str(info.value)


def test_expected_identity(keys, chain):
    assert merge_copies([chain.lines], identity=keys.primary.key_id).state.length == 5
    with pytest.raises(ChainError):
        merge_copies([chain.lines], identity=keys.stranger.key_id)


def test_invalid_copy_contributes_its_valid_prefix(keys, chain):
    broken = chain.lines[:3] + [b"{garbage\n"] + chain.lines[4:]
    result = merge_copies([broken])
    assert result.state.length == 3 and result.copies[0].error.reason is ChainFault.MALFORMED
    # with a good copy the longer valid one wins and the bad copy's error is reported
    result = merge_copies([broken, chain.lines[:4]])
    assert result.winner == 1 and result.state.length == 4
    assert result.copies[0].valid_links == 3 and result.copies[0].error is not None


def test_tampered_copy_does_not_fork(keys, chain):
    data = json.loads(chain.lines[2])
    data["payload"]["created_at"] = "2026-01-01T12:03:01Z"  # bad signature at seqno 3
    tampered = chain.lines[:2] + [json.dumps(data).encode()] + chain.lines[3:]
    result = merge_copies([tampered, chain.lines])
    assert result.fork is None and result.state.length == 5
    assert result.copies[0].valid_links == 2
    assert result.copies[0].error.reason is ChainFault.SIGNATURE


def test_nothing_found():
    result = merge_copies([[], [b"\n"]])
    assert result.state is None and result.status is Status.NOT_FOUND and result.identity_id is None
