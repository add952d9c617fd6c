"""Claims: "this account is me", signed by the identity's primary key.

`create_claim` makes one; `read_claim` checks a signed object's shape and
fields; `check_claim` is the offline verdict (`valid`, `invalid`,
`expired`), returned as a `ClaimCheck`, never raised, because a bad claim
is an answer, not an error.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

import attrs

from .errors import DecodeError, KezError, SchemaError
from .keys import Signer, normalize_key_id
from .registry import Registry, default_registry
from .signed import SignedObject, sign, verify_signature
from .status import ClaimCheck, Status
from .subjects import normalize_subject
from .timefmt import format_time, now, parse_time

KIND = "claim"
_NONCE = re.compile(r"^[0-9a-f]{32}\Z")
# A claim dated further ahead than this is refused: clocks drift, but not by hours.
FUTURE_TOLERANCE = timedelta(minutes=5)


@attrs.frozen
class Claim:
    """A claim's fields, read from a signed object whose shape was checked."""

    signed: SignedObject
    primary: str
    subject: str
    created_at: datetime
    expires_at: datetime | None
    nonce: str

    @property
    def id(self) -> str:
        return self.signed.id


def create_claim(
    signer: Signer,
    subject: str,
    *,
    expires_in: timedelta | None = None,
    created_at: datetime | None = None,
    registry: Registry | None = None,
) -> SignedObject:
    """Sign a new claim that `subject` belongs to the signer's identity."""
    registry = registry or default_registry()
    created = (created_at or now()).replace(microsecond=0)
    payload: dict[str, object] = {
        "primary": signer.key_id,
        "subject": normalize_subject(subject, registry),
        "created_at": format_time(created),
        "nonce": secrets.token_hex(16),
    }
    if expires_in is not None:
        payload["expires_at"] = format_time(created + expires_in)
    return sign(KIND, payload, signer)


def read_claim(obj: SignedObject, registry: Registry | None = None) -> Claim:
    """Check that `obj` is a well-formed claim and return its fields (no signature check)."""
    registry = registry or default_registry()
    if obj.kind != KIND:
        raise SchemaError(f"expected a claim, got a {obj.kind!r} object")
    p = obj.payload
    for field in ("primary", "subject", "created_at", "nonce"):
        if field not in p:
            raise SchemaError(f"claim payload has no {field!r}")
    if not isinstance(p["primary"], str) or normalize_key_id(p["primary"], registry) != p["primary"]:
        raise SchemaError("claim primary must be a key id in normal form (alg:<lowercase hex>)")
    if not isinstance(p["subject"], str) or normalize_subject(p["subject"], registry) != p["subject"]:
        raise SchemaError(f"claim subject {str(p['subject'])[:80]!r} is not in normal form")
    if not isinstance(p["nonce"], str) or not _NONCE.match(p["nonce"]):
        raise SchemaError("claim nonce must be 32 lowercase hex characters (16 bytes)")
    created = parse_time(p["created_at"], field="created_at")
    expires = parse_time(p["expires_at"], field="expires_at") if "expires_at" in p else None
    if expires is not None and expires <= created:
        raise SchemaError("claim expires_at is not after created_at")
    return Claim(obj, p["primary"], p["subject"], created, expires, p["nonce"])


def check_claim(
    obj: SignedObject,
    *,
    registry: Registry | None = None,
    at: datetime | None = None,
    source: str = "",
) -> ClaimCheck:
    """Verify a claim offline: shape, signature, time. Returns the verdict, never raises KezError."""
    registry = registry or default_registry()
    checked_at = at or now()
    payload = obj.payload
    fields = {
        "primary": payload.get("primary") if isinstance(payload.get("primary"), str) else None,
        "subject": payload.get("subject") if isinstance(payload.get("subject"), str) else None,
        "created_at": payload.get("created_at") if isinstance(payload.get("created_at"), str) else None,
        "expires_at": payload.get("expires_at") if isinstance(payload.get("expires_at"), str) else None,
    }
    try:
        claim_id = obj.id
    except KezError:
        claim_id = None

    def result(status: Status, reason: str) -> ClaimCheck:
        return ClaimCheck(status, reason, checked_at, source, claim_id=claim_id, **fields)

    try:
        claim = read_claim(obj, registry)
        verify_signature(obj, registry)
    except KezError as exc:
        return result(Status.INVALID, exc.message)
    if claim.created_at > checked_at + FUTURE_TOLERANCE:
        return result(Status.INVALID, f"created_at {fields['created_at']} is in the future")
    if claim.expires_at is not None and claim.expires_at <= checked_at:
        return result(Status.EXPIRED, f"expired at {fields['expires_at']}")
    return result(Status.VALID, f"signed by {claim.primary}")


def claim_from_text(text: str, registry: Registry | None = None) -> list[SignedObject]:
    """Decode text in any registered encoding; DecodeError when nothing is found."""
    from .encoding import decode_any

    objects = decode_any(text, registry)
    if not objects:
        raise DecodeError("no KEZ object found in the input")
    return objects
