"""Inbox secrets on disk: stored privately, read back, kept through the window, then deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from kez_core.errors import PassphraseError, StoreError
from kez_core.messaging import InboxKeyring, InboxSecret

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def no_passphrase() -> bytes | None:
    raise AssertionError("an unencrypted keyring never asks for a passphrase")


def test_secrets_round_trip_newest_first(tmp_path):
    ring = InboxKeyring(tmp_path)
    old, new = InboxSecret.generate(), InboxSecret.generate()
    ring.add(old, expires_at=T0 + timedelta(days=7), passphrase=None, at=T0)
    ring.add(new, expires_at=T0 + timedelta(days=14), passphrase=None, at=T0 + timedelta(days=7))
    assert [s.key_id for s in ring.secrets(no_passphrase, at=T0 + timedelta(days=8))] == [
        new.key_id,
        old.key_id,
    ]


def test_a_secret_is_kept_while_messages_may_arrive_then_pruned(tmp_path):
    ring = InboxKeyring(tmp_path)
    secret = InboxSecret.generate()
    expires = T0 + timedelta(days=7)
    ring.add(secret, expires_at=expires, passphrase=None, at=T0)
    still = expires + timedelta(days=7)
    assert ring.secrets(no_passphrase, at=still) and ring.prune(still) == []
    later = expires + timedelta(days=7, minutes=6)
    assert ring.secrets(no_passphrase, at=later) == []
    assert ring.prune(later) == [secret.key_id]
    assert list((tmp_path / "inbox").iterdir()) == []


def test_encrypted_secrets_ask_once_and_refuse_a_wrong_passphrase(tmp_path):
    ring = InboxKeyring(tmp_path)
    for _ in range(3):
        ring.add(InboxSecret.generate(), expires_at=T0 + timedelta(days=7), passphrase=b"pw", at=T0)
    asked = []

    def right() -> bytes:
        asked.append(1)
        return b"pw"

    assert len(ring.secrets(right, at=T0)) == 3 and len(asked) == 1
    with pytest.raises(PassphraseError):
        ring.secrets(lambda: b"nope", at=T0)


def test_damaged_files_are_skipped_or_reported_never_a_traceback(tmp_path):
    ring = InboxKeyring(tmp_path)
    secret = InboxSecret.generate()
    ring.add(secret, expires_at=T0 + timedelta(days=7), passphrase=None, at=T0)
    (tmp_path / "inbox" / "junk.json").write_text("{not json")
    (tmp_path / "inbox" / "other.json").write_text('{"key": "x25519:00", "expires_at": "soon"}')
    assert [r.key for r in ring.records()] == [secret.key_id]
    pem = next((tmp_path / "inbox").glob("*.pem"))
    pem.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    with pytest.raises(StoreError, match="damaged"):
        ring.secrets(no_passphrase, at=T0)
    other = InboxSecret.generate().private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem.write_bytes(other)
    with pytest.raises(StoreError, match="does not hold the key"):
        ring.secrets(no_passphrase, at=T0)
