"""RFC 8785 JSON Canonicalization Scheme (JCS).

All signing and hashing in KEZ goes through `canonicalize`. The work is done
by the `rfc8785` library; this module only maps its exceptions onto our typed
`CanonicalizationError` so callers never see a library-specific exception.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

from .errors import CanonicalizationError


def canonicalize(value: Any) -> bytes:
    """Return the JCS (RFC 8785) bytes of a JSON value."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise CanonicalizationError(f"value cannot be canonicalized (RFC 8785): {exc}") from exc
    except (TypeError, ValueError, RecursionError) as exc:
        raise CanonicalizationError(f"value is not JSON-serialisable: {exc}") from exc


def sha256_hex(value: Any) -> str:
    """Lowercase hex SHA-256 of `canonicalize(value)`: the id of a signed object."""
    return hashlib.sha256(canonicalize(value)).hexdigest()
