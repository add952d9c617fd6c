"""`ChainValidator.feed_trusted`: rebuilding the state of links validated before, without signature checks.

kez-server rebuilds a chain's state from its database after a restart; the
links there all passed `feed`. The trusted read must give exactly the state a
full validation gives, still apply every rule that is not a signature, and
never leak into the next `feed`.
"""

from __future__ import annotations

import json

import attrs
import pytest
from kez_core.sigchain import ChainError, ChainValidator
from sigchain_helpers import every_op_chain


def _flip_signature(line: bytes, where: str = "link") -> bytes:
    data = json.loads(line)
    target = data["signature"] if where == "link" else data["payload"]["body"]["claim"]["signature"]
    sig = target["sig"]
    target["sig"] = ("0" if sig[0] != "0" else "1") + sig[1:]
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def _state(validator: ChainValidator) -> dict:
    return attrs.asdict(validator.result())


def test_trusted_state_equals_the_full_validation():
    full, trusted = ChainValidator(), ChainValidator()
    for line in every_op_chain():
        full.feed(line)
        trusted.feed_trusted(line)
    assert _state(trusted) == _state(full)


def test_trusted_read_skips_only_signatures():
    lines = list(every_op_chain())
    claim_at = next(i for i, line in enumerate(lines) if b'"op":"claim"' in line)
    for where in ("link", "claim"):
        changed = lines[:claim_at] + [_flip_signature(lines[claim_at], where)]
        with pytest.raises(ChainError):
            full = ChainValidator()
            for line in changed:
                full.feed(line)
        trusted = ChainValidator()
        for line in changed:
            trusted.feed_trusted(line)  # by contract: the caller vouches for the signatures

    # every other rule still holds: a link out of place is refused
    trusted = ChainValidator()
    trusted.feed_trusted(lines[0])
    with pytest.raises(ChainError) as info:
        trusted.feed_trusted(lines[2])
    assert info.value.reason in ("seqno", "prev")


def test_feed_after_a_trusted_read_checks_signatures_again():
    lines = list(every_op_chain())
    validator = ChainValidator()
    validator.feed_trusted(lines[0])
    with pytest.raises(ChainError):
        validator.feed_trusted(b"{not json")  # a failing trusted read resets the mode too
    with pytest.raises(ChainError) as info:
        validator.feed(_flip_signature(lines[1]))
    assert info.value.reason == "signature"
    validator.feed(lines[1])
    assert validator.result().length == 2
