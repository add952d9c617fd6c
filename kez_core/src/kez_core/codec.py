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
from typing import Any

import zstandard

from .errors import DecodeError, SizeLimitError
from .signed import SignedObject

MAX_OBJECT_BYTES = 64 * 1024  # one decoded object (JSON bytes)
MAX_TEXT_CHARS = 1024 * 1024  # any text handed to a decoder
_JCS_INT_MAX = 2**53 - 1
COMPACT_PREFIX = "kez:z1:"
COMPACT_TOKEN = re.compile(r"kez:z1:[A-Za-z0-9_-]+")
_B64URL = re.compile(r"^[A-Za-z0-9_-]*\Z")
_ZSTD_LEVEL = 19  # small proofs matter more than encode speed (DNS TXT, profile fields)


def check_text(text: object, what: str = "input") -> str:
    """Accept str (or UTF-8 bytes) under the size cap."""
    if isinstance(text, bytes | bytearray):
        if len(text) > MAX_TEXT_CHARS * 4:
            raise SizeLimitError(f"{what} is larger than {MAX_TEXT_CHARS} characters")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"{what} is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    if not isinstance(text, str):
        raise DecodeError(f"{what} must be text")
    if len(text) > MAX_TEXT_CHARS:
        raise SizeLimitError(f"{what} is larger than {MAX_TEXT_CHARS} characters")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates: not text any encoder can write
            raise DecodeError(f"{what} is not valid Unicode text: {exc.reason} at character {exc.start}") from exc
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
        raise DecodeError(f"JSON number {text[:40]}… is out of range (not representable in JCS)") from exc


def parse_json(data: str | bytes) -> Any:
    """Strict JSON: no duplicate keys, no NaN/Infinity, size-capped, typed errors."""
    if len(data) > MAX_OBJECT_BYTES:
        raise SizeLimitError(f"JSON object is larger than {MAX_OBJECT_BYTES} bytes")
    try:
        return json.loads(
            data, object_pairs_hook=_no_duplicates, parse_constant=_no_constants, parse_float=_finite_float,
            parse_int=_jcs_int,
        )
    except DecodeError:
        raise
    except json.JSONDecodeError as exc:
        raise DecodeError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except UnicodeDecodeError as exc:
        raise DecodeError(f"JSON is not UTF-8: {exc.reason}") from exc
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"JSON cannot be read: {exc}") from exc


def object_from_json(data: str | bytes) -> SignedObject:
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


def compact_decode(text: str) -> SignedObject:
    text = text.strip()
    if not text.startswith(COMPACT_PREFIX):
        raise DecodeError(f"compact form must start with {COMPACT_PREFIX!r}")
    body = text[len(COMPACT_PREFIX) :]
    if not _B64URL.match(body):
        raise DecodeError("compact form holds characters outside base64url (A-Z a-z 0-9 - _)")
    if len(body) % 4 == 1:
        raise DecodeError("compact form has a truncated base64url body")
    if len(body) > (MAX_OBJECT_BYTES * 4) // 3 + 4:
        raise SizeLimitError("compact form is longer than one object may be")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f"compact form is not base64url: {exc}") from exc
    return object_from_json(zstd_decompress_capped(raw))
