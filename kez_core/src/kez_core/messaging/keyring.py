"""Inbox secrets on disk: one file per X25519 inbox key, next to the identity that owns it.

`$KEZ_HOME/identities/<name>/inbox/<hex>.pem` holds the secret (PKCS#8 PEM,
encrypted with the identity's passphrase when the identity's key is, mode
0600, written atomically) and `<hex>.json` its public facts (key id, when
it was made and when it expires). A secret is kept past its key's expiry
for as long as a message sealed to it may still be accepted (the 7-day
window), then `prune` deletes it: old envelopes then stay unreadable, which
is the point of rotating inbox keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ..errors import DecodeError, PassphraseError, StoreError
from ..keyfiles import exclusive_write, fsync_dir, private_dir
from ..timefmt import format_time, now, parse_time
from .envelope import InboxSecret
from .replay import MAX_AGE, MAX_AHEAD

FOLDER = "inbox"


@attrs.frozen
class InboxKeyRecord:
    """The public facts of one stored inbox key."""

    key: str  # x25519:<hex>
    created_at: str
    expires_at: str
    encrypted: bool

    def usable(self, at: datetime) -> bool:
        """Can a message still arrive for this key? (Until 7 days after it expires.)"""
        return parse_time(self.expires_at) + MAX_AGE + MAX_AHEAD > at


class InboxKeyring:
    """The inbox secrets of one identity (see the module docstring)."""

    def __init__(self, identity_folder: str | Path) -> None:
        self.folder = Path(identity_folder) / FOLDER

    def _paths(self, key: str) -> tuple[Path, Path]:
        hex_ = key.split(":", 1)[1]
        return self.folder / f"{hex_}.pem", self.folder / f"{hex_}.json"

    def add(
        self,
        secret: InboxSecret,
        *,
        expires_at: datetime,
        passphrase: bytes | None,
        at: datetime | None = None,
    ) -> InboxKeyRecord:
        """Store `secret` (encrypted when `passphrase` is given) before its key is published.

        Both files are created, never replaced: a key already stored under this
        name is refused, so no secret a chain lists can be overwritten.
        """
        encryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        pem = secret.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        record = InboxKeyRecord(
            secret.key_id, format_time(at or now()), format_time(expires_at), bool(passphrase)
        )
        pem_path, json_path = self._paths(record.key)
        try:
            private_dir(self.folder)
            exclusive_write(pem_path, pem, 0o600)
            try:
                exclusive_write(
                    json_path, json.dumps(attrs.asdict(record), indent=2).encode(), 0o600
                )
            except BaseException:
                pem_path.unlink(missing_ok=True)
                raise
        except FileExistsError as exc:
            raise StoreError(f"inbox key {record.key} is already stored in {self.folder}") from exc
        except OSError as exc:
            raise StoreError(f"cannot store the inbox key in {self.folder}: {exc}") from exc
        return record

    def discard(self, key: str) -> None:
        """Delete an inbox key that was stored but never published (its link was not appended)."""
        for path in reversed(self._paths(key)):  # facts first: a lone .pem is never listed
            path.unlink(missing_ok=True)
        fsync_dir(self.folder)

    def records(self) -> list[InboxKeyRecord]:
        """Every stored inbox key, newest first; unreadable entries are skipped."""
        if not self.folder.is_dir():
            return []
        out = []
        for path in self.folder.glob("*.json"):
            try:
                data = json.loads(path.read_text("utf-8"))
                record = InboxKeyRecord(
                    str(data["key"]),
                    str(data["created_at"]),
                    str(data["expires_at"]),
                    bool(data["encrypted"]),
                )
                parse_time(record.expires_at)
            except (OSError, ValueError, KeyError, TypeError, DecodeError):
                continue  # a damaged or foreign file: not one of ours
            out.append(record)
        return sorted(out, key=lambda r: r.created_at, reverse=True)

    def secrets(
        self, passphrase: Callable[[], bytes | None], at: datetime | None = None
    ) -> list[InboxSecret]:
        """The secrets that may still receive messages at `at`, newest first.

        `passphrase` is called at most once, and only if an encrypted secret is read.
        """
        at = at or now()
        cached: list[bytes | None] = []

        def password() -> bytes | None:
            if not cached:
                cached.append(passphrase())
            return cached[0]

        out = []
        for record in self.records():
            if not record.usable(at):
                continue
            pem_path, _ = self._paths(record.key)
            try:
                pem = pem_path.read_bytes()
            except OSError as exc:
                raise StoreError(f"cannot read inbox secret {pem_path}: {exc}") from exc
            try:
                key = serialization.load_pem_private_key(
                    pem, password() if record.encrypted else None
                )
            except (ValueError, TypeError) as exc:
                if record.encrypted:
                    raise PassphraseError(
                        "the passphrase does not open the inbox secrets",
                        hint="it is the identity's passphrase",
                    ) from exc
                raise StoreError(f"inbox secret {pem_path} is damaged: {exc}") from exc
            if not isinstance(key, X25519PrivateKey):
                raise StoreError(f"{pem_path} does not hold an X25519 key")
            secret = InboxSecret(key)
            if secret.key_id != record.key:
                raise StoreError(f"{pem_path} does not hold the key its name says ({record.key})")
            out.append(secret)
        return out

    def prune(self, at: datetime | None = None) -> list[str]:
        """Delete secrets no message can arrive for any more; the key ids deleted."""
        at = at or now()
        gone = []
        for record in self.records():
            if record.usable(at):
                continue
            for path in self._paths(record.key):
                path.unlink(missing_ok=True)
            gone.append(record.key)
        return gone
