"""Time only goes forward: a link dated more than 5 minutes ahead of the reader's clock is
refused when building, importing, verifying and appending on the server (issue 13 §3)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from kez_core.sigchain import (
    ChainError,
    ChainValidator,
    SigchainBuilder,
    merge_copies,
    validate_lines,
)
from kez_core.timefmt import MAX_CLOCK_SKEW, format_time
from sigchain_helpers import T0, builder, make_keys, next_link

KEYS = make_keys()
FAR = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_the_skew_is_five_minutes_in_one_place():
    from kez_core import claim
    from kez_core.messaging import replay

    assert MAX_CLOCK_SKEW == timedelta(minutes=5)
    assert claim.FUTURE_TOLERANCE is MAX_CLOCK_SKEW and replay.MAX_AHEAD is MAX_CLOCK_SKEW


def _two_links(second_at: datetime) -> list[bytes]:
    b = builder()
    b.add_recovery(KEYS.primary, KEYS.recovery.key_id)
    line2 = next_link(
        b.state, KEYS.primary, "add_recovery", {"key": KEYS.stranger.key_id}, created_at=second_at
    )
    return [*b.lines, line2]


def test_validator_refuses_a_link_more_than_five_minutes_ahead_of_its_clock():
    clock_now = T0 + timedelta(days=2)
    edge = _two_links(clock_now + MAX_CLOCK_SKEW)
    validator = ChainValidator(clock=lambda: clock_now)
    for line in edge:
        validator.feed(line)  # exactly 5 minutes ahead: accepted
    late = _two_links(clock_now + MAX_CLOCK_SKEW + timedelta(seconds=1))
    validator = ChainValidator(clock=lambda: clock_now)
    validator.feed(late[0])
    with pytest.raises(ChainError) as info:
        validator.feed(late[1])
    err = info.value
    assert err.reason == "future" and err.seqno == 2 and err.line == 2 and err.exit_code == 1
    assert format_time(clock_now + MAX_CLOCK_SKEW + timedelta(seconds=1)) in err.message
    assert validator.state.length == 1  # the valid prefix is kept
    # the same link is valid once the reader's clock has caught up
    validator = ChainValidator(clock=lambda: clock_now + timedelta(seconds=1))
    for line in late:
        validator.feed(line)


def test_a_chain_holding_a_far_future_link_is_valid_up_to_the_link_before_it():
    lines = _two_links(FAR)
    with pytest.raises(ChainError) as info:
        validate_lines(lines)
    assert info.value.reason == "future" and info.value.seqno == 2
    merged = merge_copies([lines])
    assert merged.state.length == 1 and merged.copies[0].error.reason == "future"
    with pytest.raises(ChainError):  # nothing can be appended after it
        SigchainBuilder.resume(lines)
    # the owner continues from the valid prefix; a copy that kept the future link is no fork
    b = SigchainBuilder.resume(lines[:1])
    b.add_recovery(KEYS.primary, KEYS.new.key_id)
    merged = merge_copies([lines, b.lines])
    assert merged.fork is None and merged.state.length == 2 and merged.winner == 1


def test_builder_refuses_a_far_future_link_and_appends_nothing():
    b = SigchainBuilder()
    b.add_recovery(KEYS.primary, KEYS.recovery.key_id)
    with pytest.raises(ChainError) as info:
        b.add_recovery(KEYS.primary, KEYS.new.key_id, at=FAR)
    assert info.value.reason == "future"
    assert len(b.lines) == 1 and b.state.length == 1
    b.add_recovery(KEYS.primary, KEYS.new.key_id)  # still usable


def test_cli_verify_and_import_refuse_a_future_link_and_export_import_repairs(kez, tmp_path):
    kez("identity", "new", "--no-passphrase")
    code, out, _ = kez("sigchain", "init", "--recovery-key", KEYS.device.key_id, "--json")
    assert code == 0
    identity = json.loads(out)["identity_id"]
    from kez_core.keystore import Keystore

    store = Keystore()
    signer = store.signer(None, lambda *a, **k: None)
    path = store.chain_path(identity)
    state = validate_lines(path.read_bytes().splitlines(keepends=True))
    bad = next_link(state, signer, "add_recovery", {"key": KEYS.recovery.key_id}, created_at=FAR)
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(path.read_bytes() + bad)
    code, out, _ = kez("sigchain", "verify", str(copy), "--json")
    data = json.loads(out)
    assert code == 1 and data["errors"][0]["reason"] == "future" and data["errors"][0]["seqno"] == 2
    code, _, _ = kez("sigchain", "import", str(copy))
    assert code == 1
    # a local chain that already holds one (written before this rule): adding refuses ...
    path.write_bytes(copy.read_bytes())
    code, _, err = kez("sigchain", "add-recovery", KEYS.new.key_id)
    assert code == 1 and "ahead" in err.replace("\n", " "), err
    # ... and export + import writes the valid prefix back, so the chain goes on
    good = tmp_path / "good.jsonl"
    assert kez("sigchain", "export", str(good))[0] == 0
    assert kez("sigchain", "import", str(good))[0] == 0
    code, _, err = kez("sigchain", "add-recovery", KEYS.new.key_id)
    assert code == 0, err
