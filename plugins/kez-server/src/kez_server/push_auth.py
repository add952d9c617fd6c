"""`X-KEZ-Auth` for the push endpoints: who may (un)subscribe and list a handle's pushes.

INTEGRATION NOTE: the HTTP inbox branch puts the shared verifier of this
header in kez_core (`kez_core/messaging/inbox_auth.py` or similar). This
module implements the same rules for the push endpoints alone; at merge,
replace the body of `verify_push_auth` with a call to that helper. The
rules (docs/spec.md, section 11, "Request authentication"):

- the header is `<unix ts>:<sig hex>` signed by the handle's current
  primary, or `<ts>:<key id>:<sig hex>` (split on the first and the last
  colon) signed by that key, which must be the current primary or a current
  device key of the handle's identity;
- the signed bytes are `METHOD\\nPATH\\n<bound value>\\n<ts>`; Ed25519 signs
  them, a BIP-340 key their SHA-256 (the key algorithm's `verify` does the
  hashing, as for signed objects);
- `ts` is at most 60 s from the server's clock, either way;
- anything else is 401 `unauthorized`, with a message saying which rule.

The push endpoints bind the subscription's endpoint URL
(`POST\\n/v1/push/subscribe/<handle>\\n<endpoint>\\n<ts>`), so a header
cannot be replayed for another subscription; the listing binds the empty
string.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from kez_core.errors import KezError
from kez_core.keys import parse_key_id
from kez_core.registry import Registry

from .errors import ApiError

HEADER = "x-kez-auth"
MAX_SKEW_SECONDS = 60
_TS = re.compile(r"^[0-9]{1,12}\Z")
_SIG = re.compile(r"^[0-9a-f]{128}\Z")


def signed_bytes(method: str, path: str, bound: str, ts: int | str) -> bytes:
    """The bytes an `X-KEZ-Auth` signature covers."""
    return f"{method}\n{path}\n{bound}\n{ts}".encode()


def _refuse(message: str) -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        message,
        hint="sign 'METHOD\\nPATH\\n<bound value>\\n<unix ts>' with the handle's primary key "
        "and send it as X-KEZ-Auth: <ts>:<sig hex>",
    )


def verify_push_auth(
    header: str | None,
    *,
    method: str,
    path: str,
    bound: str,
    primary: str,
    devices: Collection[str],
    registry: Registry,
    clock: float,
) -> str:
    """Check an `X-KEZ-Auth` header (rules above); the key id that signed, or ApiError 401."""
    if not header:
        raise _refuse("this request needs an X-KEZ-Auth header")
    ts_text, sep, rest = header.partition(":")
    key_text, sep2, sig = rest.rpartition(":")
    if not sep:
        raise _refuse("X-KEZ-Auth is not '<unix ts>:<sig hex>'")
    key = key_text if sep2 else primary
    if sep2 and key != primary and key not in devices:
        raise _refuse("the key in X-KEZ-Auth is not the handle's primary or one of its devices")
    if not _TS.match(ts_text):
        raise _refuse("the time in X-KEZ-Auth is not a unix timestamp in seconds")
    if abs(int(ts_text) - clock) > MAX_SKEW_SECONDS:
        raise _refuse(
            f"the time in X-KEZ-Auth is more than {MAX_SKEW_SECONDS} s from the server's clock "
            "(sign a fresh header; check your clock)"
        )
    if not _SIG.match(sig):
        raise _refuse("the signature in X-KEZ-Auth is not 128 lowercase hex characters")
    try:
        key_id = parse_key_id(key, registry)
        alg = registry.key_algorithm(key_id.alg)
    except KezError:
        raise _refuse("the key in X-KEZ-Auth is not a key id this server knows") from None
    if not alg.verify(key_id.public, signed_bytes(method, path, bound, ts_text), bytes.fromhex(sig)):
        raise _refuse("the X-KEZ-Auth signature does not verify for this request")
    return key
