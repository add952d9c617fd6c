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

from .errors import DecodeError, KezError, SchemaError, UnknownNameError
from .keys import Signer, _normalize_key_id_cached, normalize_key_id
from .registry import Registry, default_registry
from .signed import SignedObject, sign, verify_signature
from .status import ClaimCheck, Status, claim_check
from .subjects import MAX_HANDLE, normalize_subject
from .subjects import _normalize_cached as _normalize_subject_cached
from .timefmt import MAX_CLOCK_SKEW, format_time, now, parse_time

KIND = "claim"
_NONCE = re.compile(r"^[0-9a-f]{32}\Z")
_NONCE_MATCH = _NONCE.match
# A claim dated further ahead than this is refused: clocks drift, but not by hours.
FUTURE_TOLERANCE = MAX_CLOCK_SKEW


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
    return Claim(obj, *_claim_fields(obj, registry or default_registry()))


def _claim_fields(
    obj: SignedObject, registry: Registry
) -> tuple[str, str, datetime, datetime | None, str]:
    """read_claim's checks, in its order; (primary, subject, created_at, expires_at, nonce)."""
    if obj.kind != KIND:
        raise SchemaError(f"expected a claim, got a {obj.kind!r} object")
    p = obj.payload
    try:
        primary, subject, created_text, nonce = (
            p["primary"],
            p["subject"],
            p["created_at"],
            p["nonce"],
        )
    except KeyError:
        for field in ("primary", "subject", "created_at", "nonce"):
            if field not in p:
                raise SchemaError(f"claim payload has no {field!r}") from None
        raise
    # normalize_key_id / normalize_subject, their cached cores called directly for
    # the texts those functions would pass to them (the hot path of every check)
    if (
        not isinstance(primary, str)
        or (
            _normalize_key_id_cached(primary, registry)
            if len(primary) < 200
            else normalize_key_id(primary, registry)
        )
        != primary
    ):
        raise SchemaError("claim primary must be a key id in normal form (alg:<lowercase hex>)")
    if not isinstance(subject, str) or _subject_normal_form(subject, registry) != subject:
        raise SchemaError(f"claim subject {str(subject)[:80]!r} is not in normal form")
    if not isinstance(nonce, str) or not _NONCE_MATCH(nonce):
        raise SchemaError("claim nonce must be 32 lowercase hex characters (16 bytes)")
    created = parse_time(created_text, field="created_at")
    if "expires_at" in p:
        expires = parse_time(p["expires_at"], field="expires_at")
        if expires <= created:
            raise SchemaError("claim expires_at is not after created_at")
    else:
        expires = None
    return primary, subject, created, expires, nonce


def _subject_normal_form(subject: str, registry: Registry) -> str:
    """The subject's normal form; a claim read whose channel no plugin here provides is taken as written.

    Making a claim for an unknown prefix is refused (`normalize_subject`), but a claim
    someone made where that plugin is installed is not `invalid` here: its signature
    is still checked, and fetching its proof reports the missing plugin (`unreachable`).
    """
    try:
        if len(subject) <= MAX_HANDLE + 40:
            return _normalize_subject_cached(subject, registry)
        return normalize_subject(subject, registry)
    except UnknownNameError:
        return subject


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
    get = obj.payload.get
    primary_text = value if isinstance(value := get("primary"), str) else None
    subject_text = value if isinstance(value := get("subject"), str) else None
    created_text = value if isinstance(value := get("created_at"), str) else None
    expires_text = value if isinstance(value := get("expires_at"), str) else None
    try:
        claim_id = obj.id
    except KezError:
        claim_id = None
    try:
        primary, _, created, expires, _ = _claim_fields(obj, registry)
        verify_signature(obj, registry)
    except KezError as exc:
        status, reason = Status.INVALID, exc.message
    else:
        if created > checked_at + FUTURE_TOLERANCE:
            status, reason = Status.INVALID, f"created_at {created_text} is in the future"
        elif expires is not None and expires <= checked_at:
            status, reason = Status.EXPIRED, f"expired at {expires_text}"
        else:
            status, reason = Status.VALID, f"signed by {primary}"
    return claim_check(
        status,
        reason,
        checked_at,
        source,
        primary_text,
        subject_text,
        claim_id,
        created_text,
        expires_text,
    )


def claim_from_text(text: str, registry: Registry | None = None) -> list[SignedObject]:
    """Decode text in any registered encoding; DecodeError when nothing is found."""
    from .encoding import decode_any

    objects = decode_any(text, registry)
    if not objects:
        raise DecodeError("no KEZ object found in the input")
    return objects
