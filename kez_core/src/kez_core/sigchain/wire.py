"""One line of a chain file: strict parse, the link envelope, canonical bytes, times.

No chain rule lives here. `read_canonical` is the common case in one pass: a
line that is exactly JCS(link), as writers emit it, is parsed once, proven
canonical by writing its parts again and comparing, and its JCS(payload) (what
the signature covers) and JCS(object) (whose sha256 is the link id) are sliced
out of the line. Anything else goes to `read_line`, the general path: any JSON
spelling, the JCS of the object built from the parts so nothing is
canonicalized twice, and the strict duplicate-key parse when the line is not
canonical (identical text cannot parse two ways). `read_canonical` answers
exactly as `read_line` does or not at all (tests/sigchain/test_sigchain_fastpath.py).

Times: `link_time_ok` is the quick form of `parse_link_time`'s check; valid
times have one fixed-width form, so the validator compares them as text.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, TypeGuard

from ..errors import DecodeError
from ..jcs import dumps_plain as _dumps
from ..jcs import encode_str
from ..signed import PAYLOAD_VERSION, Signature, SignedObject
from ..timefmt import parse_time
from . import model as m
from .canon import LineParser, jcs, jcs_trusted

_HEX_RE = {64: re.compile(r"[0-9a-f]{64}").fullmatch, 128: re.compile(r"[0-9a-f]{128}").fullmatch}
_LINE_ENDS = frozenset({"\n", "\r\n"})
_SAFE_INT = 2**53 - 1
# `,"signature":{"alg":…,"key":…,"sig":"` per (alg, key): the same for every link a key signs
_SIG_HEADS: dict[tuple[str, str], str] = {}
_TOP_KEYS = frozenset({"kez", "payload", "signature"})
_SIG_KEYS = frozenset({"alg", "key", "sig"})
LINK_HEAD = b'{"kez":"link","payload":'
CLAIM_HEAD = b'{"kez":"claim","payload":'


def is_hex(text: object, length: int) -> TypeGuard[str]:
    return isinstance(text, str) and _HEX_RE[length](text) is not None


def accept_message(chain: str, seqno: int, prev: str | None, key: str) -> bytes:
    """The bytes an added key signs to accept its role: JCS of the accept object."""
    if (
        type(chain) is str
        and type(key) is str
        and type(seqno) is int
        and -_SAFE_INT <= seqno <= _SAFE_INT
        and (prev is None or type(prev) is str)
    ):
        # JCS written directly: names in code-point order, strings escaped as JCS does
        # (the C encoder with ensure_ascii=False), the integer in plain digits
        text = (
            f'{{"chain":{encode_str(chain)},"key":{encode_str(key)},'
            f'"prev":{"null" if prev is None else encode_str(prev)},'
            f'"seqno":{seqno},"type":"{m.ACCEPT_TYPE}"}}'
        )
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: JCS refuses it, with its own message
            pass
    return jcs({"type": m.ACCEPT_TYPE, "chain": chain, "seqno": seqno, "prev": prev, "key": key})


def envelope(payload_jcs: bytes, sig_jcs: bytes, head: bytes = LINK_HEAD) -> bytes:
    """JCS of a whole signed object from the JCS of its parts (keys kez < payload < signature)."""
    return b"".join((head, payload_jcs, b',"signature":', sig_jcs, b"}"))


def signature_jcs(sig: Signature, simple: bool) -> bytes:
    """JCS of the signature member; `sig.sig` is known to be 128 lowercase hex."""
    if simple:
        return f'{{"alg":{encode_str(sig.alg)},"key":{encode_str(sig.key)},"sig":"{sig.sig}"}}'.encode()
    return jcs(sig.to_dict())


def _link_envelope(data: Any) -> SignedObject | None:
    """SignedObject.from_dict for a well-formed link, quickly; None when anything differs."""
    if type(data) is not dict or data.keys() != _TOP_KEYS or data["kez"] != m.KIND:
        return None
    p, s = data["payload"], data["signature"]
    if type(p) is not dict or p.get("type") != m.LINK_TYPE or type(p.get("version")) is not int:
        return None
    if p["version"] != PAYLOAD_VERSION or type(s) is not dict or s.keys() != _SIG_KEYS:
        return None
    alg, key, sig = s["alg"], s["key"], s["sig"]
    if (
        type(alg) is not str
        or type(key) is not str
        or type(sig) is not str
        or not _HEX_RE[128](sig)
    ):
        return None
    return SignedObject(m.KIND, p, Signature(alg, key, sig))


def read_line(
    parser: LineParser, line: bytes | str
) -> tuple[SignedObject, bytes, bytes, bool] | None:
    """Parse one line into (link object, JCS(payload), JCS(object), simple); None for a blank line.

    Checks the envelope only (strict JSON, signed-object shape, kind `link`);
    no chain rule. Raises DecodeError.
    """
    if isinstance(line, (bytes, bytearray, str)) and not line.strip():
        return None
    data, simple = parser.parse_unchecked(line)
    obj = _link_envelope(data)
    if obj is None:  # not the common shape: the full check, with its precise messages
        obj = SignedObject.from_dict(data)
        if obj.kind != m.KIND:
            raise DecodeError(f"expected a 'link' object, got {obj.kind!r}")
    payload_jcs = jcs_trusted(obj.payload, simple)
    canonical = envelope(payload_jcs, signature_jcs(obj.signature, simple))
    raw = (
        line.strip()
        if isinstance(line, (bytes, bytearray))
        else line.strip().encode("utf-8", "replace")
    )
    if raw != canonical:
        parser.parse(line)  # not canonical: parse again, strictly, to refuse duplicate keys
    return obj, payload_jcs, canonical, simple


def payload_text(p: dict[str, Any]) -> str:
    """`jcs.dumps_plain(p)` for a plain link payload; an add_inbox payload of the usual
    shape (the seven fields, strings, a null or string prev, an int seqno) is written from
    a template, twice as fast: names in code-point order, strings escaped by the same C
    function the encoder uses, the int in the encoder's digits."""
    if len(p) == 7 and p.get("op") == m.OP_ADD_INBOX:
        try:
            body, created_at, prev, seqno = p["body"], p["created_at"], p["prev"], p["seqno"]
            device, expires_at, key = body["device"], body["expires_at"], body["key"]
            ok = (
                len(body) == 3
                and type(device) is str
                and type(expires_at) is str
                and type(key) is str
                and type(created_at) is str
                and (prev is None or type(prev) is str)
                and type(seqno) is int
                and p["type"] == m.LINK_TYPE
                and p["version"] == PAYLOAD_VERSION
                and type(p["version"]) is int
            )
        except (KeyError, TypeError):
            ok = False
        if ok:
            return (
                f'{{"body":{{"device":{encode_str(device)},"expires_at":{encode_str(expires_at)},'
                f'"key":{encode_str(key)}}},"created_at":{encode_str(created_at)},'
                f'"op":"add_inbox","prev":{"null" if prev is None else encode_str(prev)},'
                f'"seqno":{seqno},"type":"kez.link","version":{PAYLOAD_VERSION}}}'
            )
    return _dumps(p)


def read_canonical(
    parser: LineParser, line: bytes
) -> tuple[SignedObject, bytes, bytes, bytes] | None:
    """The common case of `read_line` in one pass: a bytes line that is exactly JCS(link)
    (plus a line ending), ASCII without `\\u` escapes, of kind `link` with a 128-hex sig.

    Returns (link object, JCS(payload), JCS(object), the signature's bytes), the
    payload and object bytes sliced out of the line, or None when anything differs
    (the caller then runs `read_line`, which gives the verdict and the precise
    error). The line is proven canonical by writing the parsed payload and
    signature again (the C encoder) and comparing with the text: the text from
    `{"kez":"link","payload":` to the end of the value is exactly that envelope,
    so it has exactly the three members, no duplicate key anywhere (identical
    text cannot parse two ways), and its value is plain (the parser saw no float
    and no integer beyond ±(2**53 - 1); strings are ASCII), so that text is JCS.
    """
    if line[:24] != LINK_HEAD or len(line) > parser.max_bytes:
        return None
    try:
        text = line.decode("ascii")
        parser._numbers_ok = True
        data, end = parser._fast_scan(text, 0)
        p, s = data["payload"], data["signature"]
        ptype, version = p["type"], p["version"]  # p is a dict: nothing else takes a str index
        alg, key, sig = s["alg"], s["key"], s["sig"]
        head = _SIG_HEADS.get((alg, key))
        if head is None:
            head = f',"signature":{{"alg":{encode_str(alg)},"key":{encode_str(key)},"sig":"'
            if len(_SIG_HEADS) >= 64:
                _SIG_HEADS.clear()
            _SIG_HEADS[alg, key] = head
        tail = head + sig + '"}}'
        text_p = payload_text(p)
        sig_bytes = bytes.fromhex(sig)
    except Exception:  # noqa: BLE001 - anything odd: the general path decides
        return None
    n = 24 + len(text_p)
    if (
        n + len(tail) != end
        or not text.startswith(text_p, 24)
        or not text.startswith(tail, n)
        or (end != len(text) and text[end:] not in _LINE_ENDS)
        or not parser._numbers_ok
        or "\\u" in text
        or ptype != m.LINK_TYPE
        or version != PAYLOAD_VERSION
        or type(version) is not int
        or len(sig_bytes) != 64
        or sig_bytes.hex() != sig  # exactly 128 lowercase hex
    ):
        return None
    return SignedObject(m.KIND, p, Signature(alg, key, sig)), line[24:n], line[:end], sig_bytes


_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
# The time of day fromisoformat accepts (00:00:00 to 23:59:59), and a date cache of one.
_TIME_OK = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z"
).fullmatch
_last_date = ["0001-01-01"]


def link_time_ok(text: object) -> bool:
    """True exactly when `parse_link_time(text)` returns. Two valid times compare as text
    in chronological order (one fixed-width form), so callers compare the strings."""
    if not isinstance(text, str):
        return False
    match = _TIME_OK(text)
    if match is None:
        return False
    day = match[1]
    if day == _last_date[0]:
        return True
    try:
        date.fromisoformat(day)
    except ValueError:
        return False
    _last_date[0] = day
    return True


def parse_link_time(text: object, field: str) -> datetime:
    """The one accepted time form, ASCII digits only (see timefmt.parse_time), as a naive
    UTC datetime; DecodeError otherwise."""
    if isinstance(text, str) and _TIME.fullmatch(text):
        try:  # naive, meaning UTC: only compared with each other
            return datetime.fromisoformat(text[:19])
        except ValueError:
            pass
    if isinstance(text, str) and not text.isascii():
        raise DecodeError(f"{field} {text[:40]!r} is not RFC 3339 UTC (ASCII digits, Z, seconds)")
    parse_time(text, field=field)  # raises with the precise message
    raise DecodeError(f"{field} {text!r} is not a valid time")  # pragma: no cover
