"""One line of a chain file: strict parse, the link envelope, canonical bytes, times.

No chain rule lives here: `read_line` turns a line into the link object, the
JCS of its payload (what the signature covers) and the JCS of the whole
object (whose sha256 is the link id), building the latter from the parts so
nothing is canonicalized twice; for a line that is already canonical (what
writers emit) the strict duplicate-key parse is skipped, because identical
text cannot parse two ways.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from ..errors import DecodeError
from ..jcs import encode_str
from ..signed import PAYLOAD_VERSION, Signature, SignedObject
from ..timefmt import parse_time
from . import model as m
from .canon import LineParser, jcs, jcs_trusted

_HEX_RE = {64: re.compile(r"[0-9a-f]{64}").fullmatch, 128: re.compile(r"[0-9a-f]{128}").fullmatch}
_TOP_KEYS = frozenset({"kez", "payload", "signature"})
_SIG_KEYS = frozenset({"alg", "key", "sig"})
LINK_HEAD = b'{"kez":"link","payload":'
CLAIM_HEAD = b'{"kez":"claim","payload":'


def is_hex(text: object, length: int) -> bool:
    return isinstance(text, str) and _HEX_RE[length](text) is not None


def accept_message(chain: str, seqno: int, prev: str | None, key: str) -> bytes:
    """The bytes an added key signs to accept its role: JCS of the accept object."""
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


_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


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
