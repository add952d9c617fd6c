"""Validation on a process pool gives exactly the one-core verdict (sigchain/parallel.py).

A differential test: random chains damaged at random (signatures flipped in
the link, an embedded claim or an accept; lines dropped, swapped, duplicated;
bytes flipped) are validated by the one-core path (`ChainValidator.feed`,
line by line) and by `validate_stream` with a real pool of 2 worker processes
and tiny batches, so a chain spans many batches and a signature failure in
one batch competes with a structural error after it. The outcome (the state,
or the error's reason, message, seqno, line, link id and hint) must be equal.
"""

from __future__ import annotations

import io
import json
from functools import cache

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kez_core.claim import create_claim
from kez_core.errors import UnknownNameError
from kez_core.keys import Signer
from kez_core.sigchain import ChainError, ChainValidator, iter_file_lines
from kez_core.sigchain import merge_copies, merge_many
from kez_core.sigchain.parallel import validate_many, validate_prefix, validate_stream, worker_count
from kez_core.sigchain import make_link
from sigchain_helpers import T0, builder, line_of, make_keys


SIGNERS: dict[str, Signer] = {}  # key id -> signer, to re-sign a link whose body was changed


@cache
def long_chain() -> tuple[bytes, ...]:
    """About 60 links: every op, several of each, both key algorithms (accepts, claims)."""
    keys = make_keys()
    b = builder()
    b.add_recovery(keys.primary, keys.recovery.key_id)
    primary = keys.primary
    SIGNERS.update({k.key_id: k for k in vars(keys).values()})
    for round_ in range(6):
        device = Signer.generate("nostr" if round_ % 2 else "ed25519")
        SIGNERS[device.key_id] = device
        b.add_device(primary, device, f"dev{round_}")
        for n in range(3):
            b.claim(device, create_claim(primary, f"github:user{round_}x{n}", created_at=T0))
        b.add_inbox(device, bytes([round_ + 1]) * 32)
        b.claim(primary, create_claim(primary, f"dns:r{round_}.example.org", created_at=T0))
        b.remove_device(primary, device.key_id)
    new = Signer.generate()
    SIGNERS[new.key_id] = new
    b.rotate(keys.recovery, new)
    b.claim(new, create_claim(new, "dns:example.org", created_at=T0))
    return tuple(b.lines)


def _flip_sig(line: bytes, where: str) -> bytes:
    try:
        return _flip_sig_of(json.loads(line), where)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return line  # an earlier edit broke this line already: nothing left to re-sign


def _flip_sig_of(data: dict, where: str) -> bytes:
    body = data["payload"]["body"]
    if where == "claim" and "claim" in body:
        target, field = body["claim"]["signature"], "sig"
    elif where == "accept" and "accept" in body:
        target, field = body, "accept"
    else:
        target, field = data["signature"], "sig"
    sig = target[field]
    target[field] = ("0" if sig[0] != "0" else "1") + sig[1:]
    if field == "accept" or target is not data["signature"]:
        # re-sign the link, so the inner check is the one that fails
        p = data["payload"]
        obj = make_link(
            SIGNERS[data["signature"]["key"]],
            seqno=p["seqno"],
            prev=p["prev"],
            op=p["op"],
            body=p["body"],
            created_at=p["created_at"],
        )
        return line_of(obj)
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def _outcome(run) -> tuple:
    try:
        state = run()
    except ChainError as exc:
        return ("error", exc.reason, str(exc), exc.seqno, exc.line, exc.link_id, exc.hint)
    return ("ok", attrs.asdict(state))


def _one_core(lines: list[bytes]):
    validator = ChainValidator()
    for line in lines:
        validator.feed(line)
    return validator.result()


def _apply(lines: list[bytes], edit: tuple) -> list[bytes]:
    kind, i, *rest = edit
    if not lines:
        return lines
    i %= len(lines)
    if kind == "sig":
        lines[i] = _flip_sig(lines[i], rest[0])
    elif kind == "drop":
        del lines[i]
    elif kind == "swap":
        j = rest[0] % len(lines)
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "dup":
        lines.insert(rest[0] % (len(lines) + 1), lines[i])
    elif kind == "flip":
        data = bytearray(b"".join(lines))
        pos = (i * 7919 + rest[0]) % len(data)
        data[pos] ^= rest[1]
        lines = list(iter_file_lines(io.BytesIO(bytes(data))))
    return lines


index = st.integers(min_value=0, max_value=200)
edit = st.one_of(
    st.tuples(st.just("sig"), index, st.sampled_from(["link", "claim", "accept"])),
    st.tuples(st.just("drop"), index),
    st.tuples(st.just("swap"), index, index),
    st.tuples(st.just("dup"), index, index),
    st.tuples(st.just("flip"), index, index, st.integers(min_value=1, max_value=255)),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(edit, max_size=3), batch=st.integers(min_value=1, max_value=9))
def test_pool_verdict_equals_the_one_core_verdict(edits, batch):
    lines = list(long_chain())
    for e in edits:
        lines = _apply(lines, e)
    expected = _outcome(lambda: _one_core(lines))
    pooled = _outcome(lambda: validate_stream(lines, workers=2, threshold=0, batch=batch))
    small = _outcome(lambda: validate_stream(lines, workers=2, threshold=10**9, batch=batch))
    assert pooled == expected
    assert small == expected
    # the valid prefix's state with the error (what merge_copies, and so `kez verify`, reads)
    assert _prefix(lines, workers=2, threshold=0, batch=batch) == _prefix(lines, workers=0)


def _prefix(lines, **kwargs) -> tuple:
    state, error = validate_prefix(lines, **kwargs)
    return (
        None if state is None else attrs.asdict(state),
        None
        if error is None
        else (error.reason, str(error), error.seqno, error.line, error.link_id),
    )


def test_two_signature_failures_report_the_first():
    lines = list(long_chain())
    lines[30] = _flip_sig(lines[30], "link")
    assert b'"op":"add_device"' in lines[8]
    lines[8] = _flip_sig(lines[8], "accept")  # re-signed: its accept check fails
    expected = _outcome(lambda: _one_core(lines))
    assert expected[1] == "accept" and expected[3] == 9
    assert _outcome(lambda: validate_stream(lines, workers=2, threshold=0, batch=2)) == expected
    lines[2] = _flip_sig(lines[2], "claim")  # re-signed: the embedded claim's check fails
    expected = _outcome(lambda: _one_core(lines))
    assert expected[1] == "body" and expected[3] == 3
    assert _outcome(lambda: validate_stream(lines, workers=2, threshold=0, batch=2)) == expected


def test_a_signature_failure_before_a_structural_error_wins_and_after_it_loses():
    lines = list(long_chain())
    bad_sig = lines[:]
    bad_sig[5] = _flip_sig(bad_sig[5], "link")
    del bad_sig[20]  # a gap after it
    err = _outcome(lambda: validate_stream(bad_sig, workers=2, threshold=0, batch=4))
    assert err[1] == "signature" and err[3] == 6
    gap_first = lines[:]
    gap_first[30] = _flip_sig(gap_first[30], "link")
    del gap_first[20]
    err = _outcome(lambda: validate_stream(gap_first, workers=2, threshold=0, batch=4))
    assert err[1] == "seqno" and err[3] == 21


def test_kez_workers_env(monkeypatch):
    monkeypatch.setenv("KEZ_WORKERS", "1")
    assert worker_count() == 0
    monkeypatch.setenv("KEZ_WORKERS", "3")
    assert worker_count() == 3
    monkeypatch.setenv("KEZ_WORKERS", "many")
    with pytest.raises(UnknownNameError) as info:
        worker_count()
    assert "KEZ_WORKERS" in str(info.value)


def test_a_fault_of_the_line_source_loses_to_an_earlier_signature_failure():
    # the reader raises (a line longer than 64 KiB) after a link whose signature
    # fails: the one-core path stops at that link before reading so far
    lines = list(long_chain())
    good = b"".join(lines[:20]) + b"x" * 100_000 + b"\n"
    lines[3] = _flip_sig(lines[3], "link")
    bad = b"".join(lines[:20]) + b"x" * 100_000 + b"\n"
    for data, reason in ((good, "malformed"), (bad, "signature")):
        expected = _outcome(lambda d=data: _one_core(iter_file_lines(io.BytesIO(d))))
        assert expected[1] == reason
        pooled = _outcome(
            lambda d=data: validate_stream(
                iter_file_lines(io.BytesIO(d)), workers=2, threshold=0, batch=2
            )
        )
        assert pooled == expected


@cache
def small_chains() -> tuple[tuple[bytes, ...], ...]:
    """Several short chains of different identities (what `kez verify a b c` reads)."""
    out = []
    for n in range(4):
        keys = make_keys()
        b = builder()
        b.add_recovery(keys.primary, keys.recovery.key_id)
        device = Signer.generate("nostr" if n % 2 else "ed25519")
        SIGNERS.update({k.key_id: k for k in (*vars(keys).values(), device)})
        b.add_device(keys.primary, device, "d")
        b.claim(device, create_claim(keys.primary, f"github:many{n}", created_at=T0))
        b.claim(keys.primary, create_claim(keys.primary, f"dns:m{n}.example.org", created_at=T0))
        out.append(tuple(b.lines))
    return tuple(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(st.tuples(st.integers(min_value=0, max_value=4), edit), max_size=4),
    batch=st.integers(min_value=1, max_value=9),
)
def test_many_chains_on_the_pool_equal_each_chain_on_one_core(edits, batch):
    chains = [list(c) for c in small_chains()] + [list(long_chain())]
    for which, e in edits:
        chains[which] = _apply(chains[which], e)
    expected = [_prefix(c, workers=0) for c in chains]
    for threshold in (0, 10**9):  # on the pool, and all here
        got = validate_many(chains, workers=2, threshold=threshold, batch=batch)
        assert [_pair(state, error) for state, error in got] == expected


def _pair(state, error) -> tuple:
    return (
        None if state is None else attrs.asdict(state),
        None
        if error is None
        else (error.reason, str(error), error.seqno, error.line, error.link_id),
    )


def test_merge_many_equals_merge_copies_one_by_one():
    chains = [list(c) for c in small_chains()]
    chains[1][2] = _flip_sig(chains[1][2], "link")
    groups = [[c, c[:2]] for c in chains] + [[], [chains[0], chains[2]]]

    def key(result) -> tuple:
        if isinstance(result, ChainError):
            return ("error", result.reason, str(result))
        return (
            None if result.state is None else attrs.asdict(result.state),
            result.lines,
            result.fork,
            result.winner,
            [
                (c.index, c.valid_links, None if c.error is None else str(c.error))
                for c in result.copies
            ],
        )

    def one(copies):
        try:
            return merge_copies(copies)
        except ChainError as exc:
            return exc

    assert [key(r) for r in merge_many(groups)] == [key(one(g)) for g in groups]
