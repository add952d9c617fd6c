"""Picture keys: the `profile_key` message body and the local store of keys (spec §12).

A picture key reaches contacts (and the owner's other devices) inside an
encrypted message whose body is `{"kind": "profile_key", "identity": …,
"key": <64 hex>, "picture_sha256": <64 hex>}`, sent on contact add and on
picture change, never as a public per-recipient map. A new picture gets a
new key, so a removed contact never reads the next one.

The store keeps, per identity, the last few keys received (a picture change
and its key message can arrive in either order), matched to a picture by
its SHA-256. It is a 0600 JSON file written atomically.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs

from ..errors import SchemaError, StoreError
from ..keys import normalize_key_id
from ..keystore import atomic_write
from ..registry import Registry, default_registry
from ..timefmt import format_time, now

BODY_KIND = "profile_key"
STORE_FILE = "profile_keys.json"
KEEP_PER_IDENTITY = 4
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


@attrs.frozen
class ProfileKey:
    identity: str  # whose picture this key opens
    key: bytes
    picture_sha256: str  # of the published PNG it opens

    def to_json(self) -> dict[str, str]:
        return {
            "identity": self.identity,
            "key": self.key.hex(),
            "picture_sha256": self.picture_sha256,
        }


def profile_key_body(identity: str, key: bytes, picture_sha256: str) -> dict[str, Any]:
    """The message body that hands `key` (of the picture `picture_sha256`) to a contact."""
    parse_profile_key_body(
        body := {
            "kind": BODY_KIND,
            "identity": identity,
            "key": key.hex(),
            "picture_sha256": picture_sha256,
        }
    )
    return body


def parse_profile_key_body(body: object, registry: Registry | None = None) -> ProfileKey:
    """The key a `profile_key` body carries; SchemaError on any other shape."""
    if not isinstance(body, dict) or body.get("kind") != BODY_KIND:
        raise SchemaError(f"expected a message body of kind {BODY_KIND!r}")
    identity, key, digest = body.get("identity"), body.get("key"), body.get("picture_sha256")
    if not isinstance(identity, str) or len(identity) > 200:
        raise SchemaError("profile_key identity must be a key id")
    if normalize_key_id(identity, registry or default_registry()) != identity:
        raise SchemaError("profile_key identity must be a key id in normal form")
    if not isinstance(key, str) or not _HEX64.match(key):
        raise SchemaError("profile_key key must be 64 lowercase hex characters (32 bytes)")
    if not isinstance(digest, str) or not _HEX64.match(digest):
        raise SchemaError("profile_key picture_sha256 must be 64 lowercase hex characters")
    return ProfileKey(identity, bytes.fromhex(key), digest)


def accept_profile_key(store: ProfileKeyStore, body: object, sender_identity: str) -> ProfileKey:
    """Store the key of a received `profile_key` body. Only the identity's own picture
    key is accepted from it: a contact cannot plant a key for someone else's picture."""
    key = parse_profile_key_body(body)
    if key.identity != sender_identity:
        raise SchemaError(
            f"a profile_key from {sender_identity} names another identity ({key.identity})"
        )
    store.put(key)
    return key


class ProfileKeyStore:
    """Picture keys by identity, in `<home>/profile_keys.json`."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / STORE_FILE

    def _read(self) -> dict[str, list[dict[str, str]]]:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"cannot read the picture keys in {self.path}: {exc}",
                hint="move the file away; contacts send their keys again on their next picture change",
            ) from None
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, dict):
            raise StoreError(f"{self.path} is not a picture key store")
        return keys

    def put(self, key: ProfileKey) -> None:
        """Add `key` (replacing one for the same picture); serialised with other writers
        (several listeners or processes receiving keys at once lose none)."""
        from ..keyfiles import locked

        lock_dir = self.path.parent / "profile"
        lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with locked(lock_dir):
            keys = self._read()
            entries = [
                e
                for e in keys.get(key.identity, [])
                if e.get("picture_sha256") != key.picture_sha256
            ]
            entries.append({**key.to_json(), "received_at": format_time(now())})
            keys[key.identity] = entries[-KEEP_PER_IDENTITY:]
            atomic_write(
                self.path, json.dumps({"version": 1, "keys": keys}, indent=1).encode(), 0o600
            )

    def get(self, identity: str, picture_sha256: str) -> bytes | None:
        """The key of `identity`'s picture with this hash, or None when none was received."""
        for entry in reversed(self._read().get(identity, [])):
            if entry.get("picture_sha256") == picture_sha256:
                try:
                    return parse_profile_key_body(
                        {"kind": BODY_KIND, **entry, "identity": identity}
                    ).key
                except SchemaError:
                    return None
        return None
