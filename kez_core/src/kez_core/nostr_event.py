"""NIP-01 nostr events: serialization, id, BIP-340 signature.

An event's id is the SHA-256 of its NIP-01 serialization, the JSON array
`[0, pubkey, created_at, kind, tags, content]` written as UTF-8 with no
whitespace; `sig` is a BIP-340 Schnorr signature of the 32 id bytes under
`pubkey`. This module is the one place KEZ does that, for the nostr channel
and transport plugins alike.

Escaping: NIP-01 asks for `\\n \\" \\\\ \\r \\t \\b \\f` to be escaped and every
other character written verbatim. `json.dumps(..., ensure_ascii=False)` does
exactly that for every character except the other C0 controls (U+0000-U+001F
outside those seven), which it writes as `\\u00XX`. That is also what the
common implementations do (JSON.stringify in nostr-tools, serde_json in
rust-nostr, go-nostr's serializer), so ids agree with theirs; the test
vectors (tests/vectors/nip01) hold no such character either way.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any, TypeGuard

from .builtins.bip340 import BIP340, schnorr_sign, schnorr_verify
from .errors import KezError, SchemaError

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
MAX_KIND = 65535

__all__ = ["event_id", "serialize_event", "sign_event", "verify_event"]


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def serialize_event(event: dict[str, Any]) -> bytes:
    """The NIP-01 serialization of `event` (UTF-8 bytes), whose SHA-256 is the event id.

    Only `pubkey`, `created_at`, `kind`, `tags` and `content` are read; `id`,
    `sig` and any other field are ignored. Raises `SchemaError` if a field is
    missing or of the wrong type (pubkey: 64 lowercase hex; created_at: int
    >= 0; kind: int 0..65535; tags: list of lists of strings; content: str)
    or if a string is not valid Unicode (a lone surrogate).
    """
    if not isinstance(event, dict):
        raise SchemaError("a nostr event is a JSON object")
    pubkey = event.get("pubkey")
    created_at = event.get("created_at")
    kind = event.get("kind")
    tags = event.get("tags")
    content = event.get("content")
    if not isinstance(pubkey, str) or not _HEX64.fullmatch(pubkey):
        raise SchemaError("event pubkey must be 64 lowercase hex characters")
    if not _is_int(created_at) or created_at < 0:
        raise SchemaError("event created_at must be a non-negative integer (unix seconds)")
    if not _is_int(kind) or not 0 <= kind <= MAX_KIND:
        raise SchemaError(f"event kind must be an integer in 0..{MAX_KIND}")
    if not isinstance(tags, list) or not all(
        isinstance(tag, list) and all(isinstance(item, str) for item in tag) for tag in tags
    ):
        raise SchemaError("event tags must be a list of lists of strings")
    if not isinstance(content, str):
        raise SchemaError("event content must be a string")
    text = json.dumps(
        [0, pubkey, created_at, kind, tags, content], separators=(",", ":"), ensure_ascii=False
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SchemaError(
            "event tags or content hold a lone surrogate (not valid Unicode)"
        ) from exc


def event_id(event: dict[str, Any]) -> str:
    """The event id: lowercase hex SHA-256 of `serialize_event(event)`. Raises `SchemaError`."""
    return hashlib.sha256(serialize_event(event)).hexdigest()


def verify_event(event: dict[str, Any]) -> bool:
    """True iff `event.id` is the hash of the event and `event.sig` signs that id under `event.pubkey`.

    Never raises: a malformed event (wrong types, bad hex, a pubkey not on
    the curve) is simply not valid and gives False.
    """
    try:
        if not isinstance(event, dict):
            return False
        stated_id, sig = event.get("id"), event.get("sig")
        if not isinstance(stated_id, str) or not _HEX64.fullmatch(stated_id):
            return False
        if not isinstance(sig, str) or not _HEX128.fullmatch(sig):
            return False
        if event_id(event) != stated_id:
            return False
        return schnorr_verify(
            bytes.fromhex(event["pubkey"]), bytes.fromhex(stated_id), bytes.fromhex(sig)
        )
    except (KezError, ValueError, TypeError):
        return False


def sign_event(
    secret: bytes,
    kind: int,
    content: str,
    tags: list[list[str]] | None = None,
    created_at: int | None = None,
    *,
    aux_rand: bytes | None = None,
) -> dict[str, Any]:
    """Build and sign a nostr event with a 32-byte secp256k1 secret key.

    Returns `{id, pubkey, created_at, kind, tags, content, sig}`. `tags`
    defaults to none and `created_at` to now; `aux_rand` (32 bytes, BIP-340
    auxiliary randomness) defaults to fresh random bytes and exists for
    reproducible tests. Raises `KeyFormatError` for a bad secret and
    `SchemaError` for bad fields.
    """
    event: dict[str, Any] = {
        "pubkey": BIP340.public_from_secret(secret).hex(),
        "created_at": int(time.time()) if created_at is None else created_at,
        "kind": kind,
        "tags": [] if tags is None else tags,
        "content": content,
    }
    digest = hashlib.sha256(serialize_event(event)).digest()
    event["id"] = digest.hex()
    event["sig"] = schnorr_sign(secret, digest, aux_rand).hex()
    return {k: event[k] for k in ("id", "pubkey", "created_at", "kind", "tags", "content", "sig")}
