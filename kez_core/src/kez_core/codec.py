"""Byte-level pieces shared by the encodings: strict JSON, the compact form, caps.

Decoders never trust sizes: text is capped before it is parsed, zstd output
is capped while it is produced (a frame that claims or yields more than
`MAX_OBJECT_BYTES` is refused), and every library error becomes a typed
`DecodeError`.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
from collections.abc import Callable
from typing import Any

import zstandard

from .errors import DecodeError, KezError, SizeLimitError
from .signed import SignedObject, claim_if_canonical, object_if_canonical

MAX_OBJECT_BYTES = 64 * 1024  # one decoded object (JSON bytes)
MAX_TEXT_CHARS = 1024 * 1024  # any text handed to a decoder
_JCS_INT_MAX = 2**53 - 1
COMPACT_PREFIX = "kez:z1:"
COMPACT_TOKEN = re.compile(r"kez:z1:[A-Za-z0-9_-]+")
_B64URL = re.compile(r"^[A-Za-z0-9_-]*\Z")
_ZSTD_LEVEL = 19  # small proofs matter more than encode speed (DNS TXT, profile fields)


def check_text(text: object, what: str = "input") -> str:
    """Accept str (or UTF-8 bytes) under the size cap."""
    if type(text) is str and text.isascii():  # the common case: nothing to decode or re-encode
        if len(text) > MAX_TEXT_CHARS:
            raise SizeLimitError(f"{what} is larger than {MAX_TEXT_CHARS} characters")
        return text
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_TEXT_CHARS * 4:
            raise SizeLimitError(f"{what} is larger than {MAX_TEXT_CHARS} characters")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(
                f"{what} is not UTF-8 text: {exc.reason} at byte {exc.start}"
            ) from exc
    if not isinstance(text, str):
        raise DecodeError(f"{what} must be text")
    if len(text) > MAX_TEXT_CHARS:
        raise SizeLimitError(f"{what} is larger than {MAX_TEXT_CHARS} characters")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates: not text any encoder can write
            raise DecodeError(
                f"{what} is not valid Unicode text: {exc.reason} at character {exc.start}"
            ) from exc
    return text


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)  # built in C; a shorter dict means a name was repeated
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DecodeError(f"duplicate JSON key {key[:40]!r}: refusing an ambiguous object")
            seen.add(key)
    return out


def _no_constants(name: str) -> Any:
    raise DecodeError(f"JSON value {name} is not allowed (not representable in JCS)")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise DecodeError(f"JSON number {text[:40]} is out of range (not representable in JCS)")
    return value


def _jcs_int(text: str) -> int | float:
    # JCS (RFC 8785) numbers are IEEE doubles: an integer beyond ±(2**53 - 1) is the
    # double it denotes, which is how a signed integral float (e.g. 4e16) reads back.
    value = int(text)
    if -_JCS_INT_MAX <= value <= _JCS_INT_MAX:
        return value
    try:
        return float(value)
    except OverflowError as exc:
        raise DecodeError(
            f"JSON number {text[:40]}… is out of range (not representable in JCS)"
        ) from exc


# Built once: `json.loads` with hooks builds a new decoder (and scanner) per call.
_STRICT = json.JSONDecoder(
    object_pairs_hook=_no_duplicates,
    parse_constant=_no_constants,
    parse_float=_finite_float,
    parse_int=_jcs_int,
)


def _loads(data: str | bytes, decoder: json.JSONDecoder) -> Any:
    """`json.loads(data)` through a prebuilt decoder (same input rules: BOM, UTF-8/16/32 bytes)."""
    if isinstance(data, str):
        if data.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", data, 0)
    elif isinstance(data, bytes | bytearray):
        data = data.decode(json.detect_encoding(data), "surrogatepass")
    else:
        raise TypeError(
            f"the JSON object must be str, bytes or bytearray, not {type(data).__name__}"
        )
    return decoder.decode(data)


def parse_json(data: str | bytes, *, max_bytes: int = MAX_OBJECT_BYTES) -> Any:
    """Strict JSON: no duplicate keys, no NaN/Infinity, size-capped, typed errors.

    `max_bytes` is one object's cap; messages (which may carry an inline
    file) pass their own, larger one.
    """
    if len(data) > max_bytes:
        raise SizeLimitError(f"JSON object is larger than {max_bytes} bytes")
    try:
        return _loads(data, _STRICT)
    except DecodeError:
        raise
    except json.JSONDecodeError as exc:
        raise DecodeError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DecodeError(f"JSON is not UTF-8: {exc.reason}") from exc
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"JSON cannot be read: {exc}") from exc


# ------------------------------------------------------------ canonical fast path
#
# What writers emit, and what nearly every proof holds, is the object's JCS
# bytes. For such input the strict parse's duplicate-key hook (a Python call
# per JSON object) is wasted work: if the JCS of the parsed value is
# byte-identical to the input, the input had no duplicate names (JCS writes
# each name of a dict once, and identical text parses one way). So the fast
# path parses without the hook and compares; on any difference, error or
# unusual value it falls back to the strict parse, which gives the verdict
# and the precise error. The JCS bytes it builds are kept on the object (the
# signature and the id need them anyway). Which values the C encoder writes
# as exact JCS is explained in `jcs.py` and `sigchain/canon.py`: ASCII text
# without `\u` escapes holds only ASCII strings, and the number hooks stop
# the scan at floats and integers beyond ±(2**53 - 1).


class _NotPlain(Exception):
    """A number the fast path does not vouch for: the strict parse takes over."""


def _refuse_float(text: str) -> float:
    raise _NotPlain


def _plain_int(text: str) -> int:
    value = int(text)
    if -_JCS_INT_MAX <= value <= _JCS_INT_MAX:
        return value
    raise _NotPlain


# Numbers the C encoder would not write as JCS (any float, integers beyond
# ±(2**53 - 1)) stop the scan at once: no per-call flag, nothing thread-local.
_UNCHECKED = json.JSONDecoder(
    parse_constant=_no_constants, parse_float=_refuse_float, parse_int=_plain_int
)
# what JSONDecoder.decode calls, without its whitespace handling (CPython's JSONDecoder
# sets `scan_once` in __init__; typeshed does not declare it)
_SCAN: Callable[[str, int], tuple[Any, int]] = _UNCHECKED.scan_once  # type: ignore[attr-defined]
_CANONICAL_START = '{"kez":"'
# What every KEZ writer emits for a claim: read without a JSON parse
# (`signed.claim_if_canonical`), when it is exactly that.
_CLAIM_START = '{"kez":"claim","payload":{"created_at":"'
_SCAN_ERRORS = (StopIteration, _NotPlain, KezError, ValueError, RecursionError)


def object_from_json(data: str | bytes) -> SignedObject:
    """A signed object from JSON text: strict parse, envelope checks (see `SignedObject.from_dict`)."""
    if len(data) <= MAX_OBJECT_BYTES:
        # the canonical fast path (see above); anything it does not vouch for goes the strict way
        text: str | None
        raw: bytes | None
        if type(data) is bytes:
            text, raw = (data.decode("ascii"), data) if data.isascii() else (None, None)
        else:
            text, raw = (data, None) if type(data) is str and data.isascii() else (None, None)
        # "\\" first: one memchr, where a two-character search costs ten times more
        if (
            text is not None
            and text.startswith(_CANONICAL_START)
            and ("\\" not in text or "\\u" not in text)
        ):
            if raw is None:
                raw = text.encode("ascii")
            if text.startswith(_CLAIM_START):
                obj = claim_if_canonical(text, raw)
                if obj is not None:
                    return obj
            try:
                value, end = _SCAN(text, 0)
            except _SCAN_ERRORS:
                end = -1  # the strict parse says what is wrong
            if end == len(text):
                obj = object_if_canonical(value, raw)
                if obj is not None:
                    return obj
    return SignedObject.from_dict(parse_json(data))


def compact_encode(obj: SignedObject) -> str:
    raw = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(obj.canonical())
    return COMPACT_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


_DCTX = zstandard.ZstdDecompressor()


def zstd_decompress_capped(raw: bytes, cap: int = MAX_OBJECT_BYTES) -> bytes:
    """Decompress exactly one zstd frame, refusing to produce more than `cap` bytes.

    A frame that declares its size (ours always do) is decompressed whole and
    bytes after it are refused, so one object has one compact spelling. A
    frame without a declared size is read through a stream capped at `cap`.
    """
    try:
        declared = zstandard.frame_content_size(raw)
    except zstandard.ZstdError as exc:
        raise DecodeError(f"compact payload is not a zstd frame: {exc}") from exc
    if declared > cap:
        raise SizeLimitError(f"compact payload declares {declared} bytes, the cap is {cap}")
    if declared >= 0:
        # One shot into a buffer of the declared size; libzstd refuses more output,
        # a truncated frame and (allow_extra_data=False) bytes after the frame. On
        # any refusal the streaming path below names the fault.
        try:
            # positional: (data, max_output_size, read_across_frames, allow_extra_data),
            # cheaper than keywords through the C extension's argument parser
            out = _DCTX.decompress(raw, 0, False, False)
        except (zstandard.ZstdError, TypeError):
            pass
        else:
            if len(out) == declared:
                return out
    try:
        if declared >= 0:
            dobj = _DCTX.decompressobj()
            out = dobj.decompress(raw)  # libzstd refuses output beyond the declared size
            if not dobj.eof or len(out) != declared:
                raise DecodeError("compact payload is a truncated zstd frame")
            if dobj.unused_data:
                raise DecodeError("compact payload has bytes after its zstd frame")
            return out
        with _DCTX.stream_reader(io.BytesIO(raw)) as reader:
            out = reader.read(cap + 1)
    except zstandard.ZstdError as exc:
        raise DecodeError(f"compact payload is corrupt zstd data: {exc}") from exc
    if len(out) > cap:
        raise SizeLimitError(f"compact payload decompresses to more than {cap} bytes")
    return out


_B64URL_TO_STD = bytes.maketrans(b"-_", b"+/")
_MAX_COMPACT_BODY = (MAX_OBJECT_BYTES * 4) // 3 + 4


def _b64url_strict(body: str) -> bytes | None:
    """The bytes of a well-formed base64url body, or None (then `_b64url_body` names the fault).

    Strict decoding after mapping -_ to +/ accepts exactly the base64url
    alphabet (the three excluded characters aside), in one pass: bytes back
    mean `body` holds base64url characters only (no whitespace either).
    """
    size = len(body)
    if (
        size % 4 != 1
        and size <= _MAX_COMPACT_BODY
        and "+" not in body
        and "/" not in body
        and "=" not in body
    ):
        try:
            padded = (body + "=" * (-size % 4)).encode("ascii")
            return binascii.a2b_base64(padded.translate(_B64URL_TO_STD), strict_mode=True)
        except (binascii.Error, ValueError):  # UnicodeEncodeError is a ValueError
            pass
    return None


def _b64url_body(body: str) -> bytes:
    """The bytes of a compact form's base64url body; typed errors, in a fixed order."""
    raw = _b64url_strict(body)
    if raw is not None:
        return raw
    size = len(body)
    if not _B64URL.match(body):
        raise DecodeError("compact form holds characters outside base64url (A-Z a-z 0-9 - _)")
    if size % 4 == 1:
        raise DecodeError("compact form has a truncated base64url body")
    if size > _MAX_COMPACT_BODY:
        raise SizeLimitError("compact form is longer than one object may be")
    try:
        return base64.urlsafe_b64decode(body + "=" * (-size % 4))
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f"compact form is not base64url: {exc}") from exc


def compact_decode(text: str) -> SignedObject:
    text = text.strip()
    if not text.startswith(COMPACT_PREFIX):
        raise DecodeError(f"compact form must start with {COMPACT_PREFIX!r}")
    return object_from_json(zstd_decompress_capped(_b64url_body(text[len(COMPACT_PREFIX) :])))


def compact_decode_plain(text: str) -> SignedObject | None:
    """`compact_decode(text)` when `text` (stripped) is `kez:z1:` and a well-formed body, else None.

    For `decode_any`: such text holds one token and no whitespace, so the
    compact encoding is what detection picks for it; errors past the base64
    step are the ones `compact_decode` raises. None: not shown here, take
    the general path.
    """
    text = text.strip()
    if not text.startswith(COMPACT_PREFIX):
        return None
    raw = _b64url_strict(text[len(COMPACT_PREFIX) :])
    if raw is None:
        return None
    # zstd_decompress_capped's first branch, inlined: a frame declaring its size,
    # within the cap, decompressed whole with nothing after it
    try:
        declared = zstandard.frame_content_size(raw)
        out = _DCTX.decompress(raw, 0, False, False) if 0 <= declared <= MAX_OBJECT_BYTES else None
    except (zstandard.ZstdError, TypeError):
        out = None
    if out is None or len(out) != declared:
        out = zstd_decompress_capped(raw)  # the general path, which names the fault
    return object_from_json(out)
