"""The handle registry: the seven rules of a `handle_registration` envelope, and lookups.

The envelope (a KEZ signed object, type `kez.chat.handle_registration`):

    {"kez": "handle_registration",
     "payload": {"type": "kez.chat.handle_registration", "version": 1,
                 "handle": "alice", "primary": "ed25519:…", "server": "example.org",
                 "created_at": "2026-05-25T03:00:00Z"},
     "signature": {"alg": "ed25519-sha512-jcs", "key": "ed25519:…", "sig": "<128 hex>"}}

Rules, checked in this order (the first failure is answered):

1. the envelope tag is `handle_registration`                    400 bad_envelope
2. payload.type is `kez.chat.handle_registration`, version 1     400 bad_payload
   (and the payload has the four string fields)
3. signature.key equals payload.primary                          422 key_mismatch
4. the signature verifies (Ed25519 or BIP-340)                   422 bad_signature
5. payload.server is this server's name                          422 wrong_server
6. the handle is 3-32 of a-z0-9_- starting with a letter or
   digit (422 bad_handle) and not reserved                       422 reserved_handle
7. created_at is within 5 minutes of the server's clock          422 stale_registration

Then uniqueness: 409 `replay` (this very envelope was accepted before),
409 `handle_taken`, 409 `primary_taken`.

An optional `payload.identity` names the identity id of the handle's chain
when the primary is not it (after a rotation). The server then requires its
stored copy of that chain to have this primary as its current primary, and
a registration of a taken handle by the current primary of the same identity
moves the handle to the new key (see `app.KezServer._register`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import attrs
from kez_core.errors import KezError, SchemaError
from kez_core.registry import Registry
from kez_core.signed import SignedObject, verify_signature
from kez_core.timefmt import parse_time

from .chains import is_identity_id
from .errors import ApiError

KIND = "handle_registration"
TYPE = "kez.chat.handle_registration"
MAX_SKEW_SECONDS = 300
HANDLE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{2,31}\Z")
HANDLE_RULE = "3-32 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"

# Names that look official, belong to mail/DNS conventions (RFC 2142) or to
# the server's own routes. Extend with --reserved / KEZ_SERVER_RESERVED.
RESERVED: frozenset[str] = frozenset(
    [
        "abuse",
        "admin",
        "administrator",
        "administrators",
        "api",
        "app",
        "apps",
        "auth",
        "autoconfig",
        "autodiscover",
        "billing",
        "blog",
        "bot",
        "cdn",
        "chat",
        "contact",
        "dev",
        "devnull",
        "dns",
        "docs",
        "email",
        "example",
        "ftp",
        "help",
        "helpdesk",
        "hostmaster",
        "imap",
        "inbox",
        "info",
        "invalid",
        "kez",
        "localhost",
        "login",
        "logout",
        "mail",
        "mailer-daemon",
        "marketing",
        "me",
        "media",
        "mod",
        "moderator",
        "moderators",
        "news",
        "noc",
        "no-reply",
        "noreply",
        "nobody",
        "null",
        "official",
        "operator",
        "owner",
        "pop",
        "pop3",
        "postmaster",
        "privacy",
        "register",
        "registry",
        "root",
        "sales",
        "security",
        "server",
        "settings",
        "signup",
        "smtp",
        "ssl",
        "staff",
        "static",
        "status",
        "support",
        "sys",
        "sysadmin",
        "system",
        "team",
        "test",
        "tls",
        "undefined",
        "unknown",
        "user",
        "users",
        "webmaster",
        "well-known",
        "wellknown",
        "www",
        "www-data",
    ]
)


@attrs.frozen
class Registration:
    handle: str
    primary: str
    envelope_id: str
    envelope: bytes  # canonical JSON of the whole envelope (kept as evidence)
    identity: str  # the identity id of the handle's chain (payload.identity, else the primary)


def _field(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise ApiError(400, "bad_payload", f"payload.{name} must be a string")
    return value


def check_registration(
    data: Any,
    *,
    server_name: str,
    reserved: frozenset[str],
    clock: datetime,
    registry: Registry,
) -> Registration:
    """Apply rules 1-7 to a parsed request body; ApiError names the first rule broken."""
    # 1. envelope tag
    if not isinstance(data, dict):
        raise ApiError(
            400, "bad_envelope", "the body must be a JSON object: a signed handle_registration"
        )
    if data.get("kez") != KIND:
        raise ApiError(
            400,
            "bad_envelope",
            f"the envelope tag (field 'kez') must be {KIND!r}, got {str(data.get('kez'))[:40]!r}",
        )
    # 2. payload type and version
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_payload", "field 'payload' must be a JSON object")
    if payload.get("type") != TYPE:
        raise ApiError(
            400,
            "bad_payload",
            f"payload.type must be {TYPE!r}, got {str(payload.get('type'))[:60]!r}",
        )
    if type(payload.get("version")) is not int or payload["version"] != 1:
        raise ApiError(400, "bad_payload", "payload.version must be the integer 1")
    try:
        obj = SignedObject.from_dict(data)
    except SchemaError as exc:
        raise ApiError(
            400, "bad_envelope", exc.message, **({"hint": exc.hint} if exc.hint else {})
        ) from exc
    handle = _field(payload, "handle")
    primary = _field(payload, "primary")
    server = _field(payload, "server")
    created_at = _field(payload, "created_at")
    identity = payload.get("identity", primary)
    if not isinstance(identity, str) or not is_identity_id(identity, registry):
        raise ApiError(
            400,
            "bad_payload",
            "payload.identity must be an identity id in normal form (the key that signed "
            "seqno 1 of the chain)",
        )
    # 3. the signing key is the primary being registered
    if obj.signature.key != primary:
        raise ApiError(
            422,
            "key_mismatch",
            "signature.key must equal payload.primary: sign with the key you register",
        )
    # 4. the signature
    try:
        verify_signature(obj, registry)
    except KezError as exc:
        raise ApiError(422, "bad_signature", f"the signature does not hold: {exc.message}") from exc
    # 5. this server
    if server != server_name:
        raise ApiError(
            422,
            "wrong_server",
            f"this registration is for {server[:80]!r}; this server is {server_name!r}",
            hint="sign a registration with payload.server set to this server's name (GET /v1/healthz)",
        )
    # 6. the handle
    if not HANDLE_RE.match(handle):
        raise ApiError(422, "bad_handle", f"handle {handle[:40]!r} is not valid: {HANDLE_RULE}")
    if handle in RESERVED or handle in reserved:
        raise ApiError(
            422, "reserved_handle", f"handle {handle!r} is reserved on this server; pick another"
        )
    # 7. freshness
    try:
        when = parse_time(created_at, field="payload.created_at")
    except KezError as exc:
        raise ApiError(422, "bad_time", exc.message) from exc
    skew = (when - clock).total_seconds()
    if abs(skew) > MAX_SKEW_SECONDS:
        side = "old" if skew < 0 else "in the future"
        raise ApiError(
            422,
            "stale_registration",
            f"created_at {created_at} is {abs(int(skew))} s {side}; it must be within "
            f"{MAX_SKEW_SECONDS // 60} minutes of the server's clock",
            hint="sign a fresh registration (and check your clock)",
        )
    return Registration(handle, primary, obj.id, obj.canonical(), identity)


def sigchain_path(primary: str) -> str:
    alg, _, hexkey = primary.partition(":")
    return f"/v1/sigchains/{alg}/{hexkey}"
