"""RFC 8785 JSON Canonicalization Scheme (JCS).

All signing and hashing in KEZ goes through `canonicalize`. The general
implementation is the `rfc8785` library. It is pure Python, and on the
hot path (every claim verified costs three canonicalizations) it was the
largest cost after the signature itself, so `canonicalize` first tries
the standard library's C JSON encoder on values where its output is
*provably* the same bytes as JCS:

- object names are ASCII, so code-point order (Python's sort) equals
  UTF-16 code-unit order (JCS's sort);
- leaves are `str`, `bool`, `None` or `int` within ±(2**53 - 1): no floats,
  whose ECMAScript form differs from Python's `repr`;
- strings are written with `ensure_ascii=False`, which escapes exactly
  what JCS escapes (`"`, `\\`, `\\b \\f \\n \\r \\t`, other U+0000–U+001F
  as lowercase `\\u00xx`) and nothing else; a lone surrogate fails the
  UTF-8 encode and falls back.

Anything else goes to `rfc8785`. A property test checks the two agree on
arbitrary JSON values, and the published JCS vectors run through here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

from .errors import CanonicalizationError

_INT_MAX = 2**53 - 1
_FAST = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)

try:
    # CPython's C accelerators: typeshed does not declare them (they may be None or absent)
    from json.encoder import c_encode_basestring as _c_str  # type: ignore[attr-defined]
    from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore[attr-defined]

    # The C encoder `_FAST` uses, built once, called without `JSONEncoder.encode`'s
    # per-call setup: markers=None (no cycle check; parsed JSON has no cycles),
    # default=None, the ensure_ascii=False string encoder, ":" and ",", sort_keys.
    _c_encoder = _c_make_encoder(None, None, _c_str, None, ":", ",", True, False, False)

    def dumps_plain(value: Any) -> str:
        """JCS text of a value the caller knows is plain (see `_plain`); no check is made."""
        return "".join(_c_encoder(value, 0))

    # A JSON string literal escaped as JCS escapes it (`ensure_ascii=False`).
    encode_str = _c_str

except (ImportError, TypeError):  # pragma: no cover - no C accelerator (e.g. PyPy)

    def dumps_plain(value: Any) -> str:
        """JCS text of a value the caller knows is plain (see `_plain`); no check is made."""
        return _FAST.encode(value)

    encode_str = json.encoder.py_encode_basestring


def _plain(value: Any) -> bool:
    """True when the C encoder's output for `value` is byte-identical to JCS."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        number: int = value
        return -_INT_MAX <= number <= _INT_MAX
    if kind is dict:
        return all(type(k) is str and k.isascii() and _plain(v) for k, v in value.items())
    if kind is list:
        return all(_plain(v) for v in value)
    return False


def canonicalize(value: Any) -> bytes:
    """Return the JCS (RFC 8785) bytes of a JSON value."""
    try:
        if _plain(value):
            return _FAST.encode(value).encode("utf-8")
    except (UnicodeEncodeError, RecursionError, ValueError):
        pass  # lone surrogates, absurd nesting: let rfc8785 give the precise error
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise CanonicalizationError(f"value cannot be canonicalized (RFC 8785): {exc}") from exc
    except (TypeError, ValueError, RecursionError) as exc:
        raise CanonicalizationError(f"value is not JSON-serialisable: {exc}") from exc


def sha256_hex(value: Any) -> str:
    """Lowercase hex SHA-256 of `canonicalize(value)`: the id of a signed object."""
    return hashlib.sha256(canonicalize(value)).hexdigest()
