"""The validator's fast paths give exactly what the general paths give.

- `wire.read_canonical` (one pass over a canonical line) returns either None
  (the general `read_line` decides) or exactly `read_line`'s result;
- `wire.link_time_ok` is True exactly when `parse_link_time` returns, and two
  valid times compare as text as they do as datetimes;
- `wire.accept_message` writes the bytes of `jcs(accept object)`;
- `rules._plain_claim` returns None or exactly `SignedObject.from_dict`'s object.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kez_core.claim import create_claim
from kez_core.errors import DecodeError, KezError
from kez_core.sigchain import Link, iter_links, validate_lines
from kez_core.sigchain.canon import LineParser, jcs
from kez_core.sigchain.rules import _plain_claim
from kez_core.sigchain.wire import (
    accept_message,
    link_time_ok,
    parse_link_time,
    read_canonical,
    read_line,
)
from kez_core.signed import SignedObject
from sigchain_helpers import T0, every_op_chain, make_keys

lines = every_op_chain


def reference(line: bytes):
    try:
        return read_line(LineParser(), line)
    except DecodeError as exc:
        return exc


def agree(line: bytes) -> bool:
    """read_canonical(line) is None or read_line's answer; True when the fast path answered."""
    fast = read_canonical(LineParser(), line)
    if fast is None:
        return False
    ref = reference(line)
    assert not isinstance(ref, Exception), f"fast path accepted what read_line refuses: {ref}"
    obj, payload_jcs, canonical, simple = ref
    assert simple is True
    assert fast[0] == obj
    assert fast[1] == payload_jcs and type(fast[1]) is bytes
    assert fast[2] == canonical and type(fast[2]) is bytes
    assert fast[3] == bytes.fromhex(obj.signature.sig)
    return True


def test_every_written_line_takes_the_fast_path():
    for line in lines():
        assert agree(line)
        assert agree(line.rstrip(b"\n"))
        assert agree(line.rstrip(b"\n") + b"\r\n")


def _respell(line: bytes, how: str) -> bytes:
    """The same link (or an almost-same one) spelled another way."""
    data = json.loads(line)
    text = line.rstrip(b"\n").decode()
    if how == "spaces":
        return json.dumps(data, separators=(", ", ": "), sort_keys=True).encode() + b"\n"
    if how == "order":
        data["payload"] = dict(reversed(list(data["payload"].items())))
        return json.dumps(data, separators=(",", ":")).encode()
    if how == "escape":
        return text.replace('"kez.link"', '"kez.\\u006cink"').encode()
    if how == "dup_key":
        return text.replace('"op":', '"op":"claim","op":', 1).encode()
    if how == "float_version":
        return text.replace('"version":1}', '"version":1.0}', 1).encode()
    if how == "big_int":
        return text.replace('"seqno":', '"extra":9007199254740993,"seqno":', 1).encode()
    if how == "exp_int":
        return text.replace('"version":1}', '"version":1e0}', 1).encode()
    if how == "upper_sig":
        sig = data["signature"]["sig"]
        return text.replace(sig, sig.upper()).encode()
    if how == "extra_top":
        return text[:-1].encode() + b',"z":1}'
    if how == "extra_sig":
        return text[:-2].encode() + b',"x":"y"}}'
    if how == "namespaced":
        return text.replace('"kez.link"', '"kez.x.link"').encode()
    if how == "kind":
        return text.replace('"kez":"link"', '"kez":"claim"').encode()
    if how == "nan":
        return text.replace('"version":1}', '"version":NaN}', 1).encode()
    if how == "trailing":
        return text.encode() + b" \n"
    if how == "leading":
        return b" " + text.encode()
    if how == "utf8":
        return text.replace('"kez.link"', '"kez.l\xefnk"').encode()
    if how == "truncated":
        return text[:-1].encode()
    raise AssertionError(how)


RESPELLINGS = [
    "spaces",
    "order",
    "escape",
    "dup_key",
    "float_version",
    "big_int",
    "exp_int",
    "upper_sig",
    "extra_top",
    "extra_sig",
    "namespaced",
    "kind",
    "nan",
    "trailing",
    "leading",
    "utf8",
    "truncated",
]


@pytest.mark.parametrize("how", RESPELLINGS)
def test_other_spellings_leave_the_fast_path(how):
    for line in lines():
        assert not agree(_respell(line, how))


@settings(max_examples=400, deadline=None)
@given(
    st.integers(min_value=0, max_value=63),
    st.integers(min_value=0),
    st.sampled_from(["flip", "insert", "delete"]),
    st.integers(min_value=0, max_value=255),
)
def test_damaged_lines_agree(index, pos, kind, value):
    line = bytearray(lines()[index % len(lines())])
    pos %= len(line)
    if kind == "flip":
        line[pos] ^= value or 1
    elif kind == "insert":
        line.insert(pos, value)
    else:
        del line[pos]
    agree(bytes(line))


def test_fast_path_keeps_errors_and_positions():
    """A damaged canonical line fails through the general path, with its own message."""
    good = list(lines())
    bad = good[:3] + [good[3].replace(b'"version":1}', b'"version":2}')] + good[4:]
    with pytest.raises(KezError) as info:
        validate_lines(bad)
    assert info.value.reason == "malformed" and info.value.seqno == 4
    assert "payload.version 2 is not supported" in info.value.message


def test_links_are_named_tuples_and_immutable():
    links = list(iter_links(lines()))
    assert all(isinstance(link, Link) for link in links)
    assert [link.line for link in links] == list(lines())
    with pytest.raises(AttributeError):
        links[0].seqno = 5  # type: ignore[misc]
    assert links[0].obj.id == links[0].id


# ---------------------------------------------------------------- times


def _parses(text: object) -> bool:
    try:
        parse_link_time(text, "t")
    except DecodeError:
        return False
    return True


def test_time_of_day_grid():
    for hh in range(100):
        for mm in (0, 1, 9, 10, 59, 60, 61, 99):
            for ss in (0, 1, 59, 60, 61, 99):
                text = f"2026-02-28T{hh:02d}:{mm:02d}:{ss:02d}Z"
                assert link_time_ok(text) is _parses(text), text


def test_dates_grid():
    for year in (0, 1, 1900, 2000, 2024, 2026, 2100, 9999):
        for month in range(14):
            for day in range(33):
                text = f"{year:04d}-{month:02d}-{day:02d}T12:00:00Z"
                assert link_time_ok(text) is _parses(text), text
                # the one-date cache must not make a bad date pass after a good one
                assert link_time_ok("2026-01-01T00:00:00Z")
                assert link_time_ok(text) is _parses(text), text


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="0123456789-:TZ٣ t", min_size=18, max_size=22),
        st.text(max_size=25),
        st.integers(),
        st.none(),
    )
)
def test_times_agree(text):
    assert link_time_ok(text) is _parses(text)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=400 * 366 * 86400),
    st.integers(min_value=0, max_value=10**9),
)
def test_valid_times_compare_as_text(a, b):
    t0 = parse_link_time("1970-01-01T00:00:00Z", "t")
    x, y = t0 + timedelta(seconds=a), t0 + timedelta(seconds=a + b - 5 * 10**8)
    if y.year < 1:
        return
    tx, ty = x.strftime("%Y-%m-%dT%H:%M:%SZ"), y.strftime("%Y-%m-%dT%H:%M:%SZ")
    tx, ty = f"{x.year:04d}{tx[tx.index('-') :]}", f"{y.year:04d}{ty[ty.index('-') :]}"
    assert link_time_ok(tx) and link_time_ok(ty)
    assert (tx < ty) is (x < y) and (tx <= ty) is (x <= y)


def test_date_cache_sees_every_day():
    day = date(2024, 1, 1)
    while day.year < 2025:
        assert link_time_ok(f"{day.isoformat()}T00:00:00Z")
        day += timedelta(days=1)
    assert not link_time_ok("2025-02-29T00:00:00Z")


# ---------------------------------------------------------------- accept message

texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["ed25519:" + "a" * 64, 'q"\\\n\x01\x7f\u2028é', "\ud800"]),
)


@settings(max_examples=400, deadline=None)
@given(
    texts,
    st.one_of(st.integers(min_value=-(2**60), max_value=2**60), st.booleans()),
    st.one_of(st.none(), texts),
    texts,
)
def test_accept_message_is_jcs(chain, seqno, prev, key):
    try:
        want = jcs({"type": "kez.accept", "chain": chain, "seqno": seqno, "prev": prev, "key": key})
    except KezError as exc:
        with pytest.raises(type(exc)):
            accept_message(chain, seqno, prev, key)
        return
    assert accept_message(chain, seqno, prev, key) == want


# ---------------------------------------------------------------- embedded claims


@cache
def claim_dict() -> dict:
    return create_claim(make_keys().primary, "github:alice", created_at=T0).to_dict()


def _mutations(d: dict) -> list[object]:
    out: list[object] = [d, [], "x", None]
    for path, value in [
        (("kez",), "link"),
        (("kez",), 1),
        (("payload",), []),
        (("signature",), "s"),
        (("payload", "type"), "kez.x.claim"),
        (("payload", "type"), None),
        (("payload", "version"), True),
        (("payload", "version"), 1.0),
        (("payload", "version"), 2),
        (("signature", "sig"), "A" * 128),
        (("signature", "sig"), "a" * 127),
        (("signature", "sig"), 5),
        (("signature", "alg"), None),
        (("signature", "key"), 1),
    ]:
        m = json.loads(json.dumps(d))
        target = m
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        out.append(m)
    for where in ((), ("signature",)):
        m = json.loads(json.dumps(d))
        target = m
        for part in where:
            target = target[part]
        target["extra"] = 1
        out.append(m)
        m2 = json.loads(json.dumps(d))
        target = m2
        for part in where:
            target = target[part]
        del target[next(iter(target))]
        out.append(m2)
    return out


def test_plain_claim_agrees_with_from_dict():
    for raw in _mutations(claim_dict()):
        fast = _plain_claim(raw)
        try:
            ref = SignedObject.from_dict(raw)
        except KezError:
            assert fast is None
            continue
        assert fast is None or fast == ref
    assert _plain_claim(claim_dict()) == SignedObject.from_dict(claim_dict())


# ---------------------------------------------------------------- add_inbox template

fields = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["x25519:" + "ab" * 32, "2026-01-01T00:00:00Z", 'q"\\\n\x01\x7f\u2028é']),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=500, deadline=None)
@given(
    st.fixed_dictionaries(
        {"device": fields, "expires_at": fields, "key": fields},
        optional={"extra": fields},
    ),
    fields,
    fields,
    fields,
    st.sampled_from(["add_inbox", "add_device"]),
    st.sampled_from(["kez.link", "kez.claim"]),
    st.sampled_from([1, 2, True, 1.0]),
    st.booleans(),
)
def test_payload_template_is_the_encoder(body, created_at, prev, seqno, op, ptype, version, more):
    from kez_core.jcs import dumps_plain
    from kez_core.sigchain.wire import payload_text

    payload = {"body": body, "created_at": created_at, "op": op, "prev": prev, "seqno": seqno}
    payload.update({"type": ptype, "version": version})
    if more:
        payload["zz"] = 1
    try:
        want = dumps_plain(payload)
    except (TypeError, ValueError):
        return
    assert payload_text(payload) == want
