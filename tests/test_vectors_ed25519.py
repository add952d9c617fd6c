"""Ed25519 vectors (RFC 8032 §7.1 and djb's sign.input) against `kez_core.builtins.ed25519`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from kez_core.builtins.ed25519 import ED25519

VECTORS = Path(__file__).parent / "vectors" / "ed25519"
RFC8032 = json.loads((VECTORS / "rfc8032.json").read_text())


def _sign_input() -> list[tuple[bytes, bytes, bytes, bytes]]:
    rows = []
    for line in (VECTORS / "sign.input.first128").read_text().splitlines():
        fields = line.split(":")
        assert len(fields) == 5 and fields[4] == ""  # sk:pk:msg:sigmsg: (trailing colon)
        sk, pk, msg, sigmsg = (bytes.fromhex(f) for f in fields[:4])
        assert len(sk) == 64 and sk[32:] == pk and sigmsg[64:] == msg
        rows.append((sk[:32], pk, msg, sigmsg[:64]))
    return rows


SIGN_INPUT = _sign_input()


def test_counts():
    assert [v["name"] for v in RFC8032] == [
        "TEST 1",
        "TEST 2",
        "TEST 3",
        "TEST 1024",
        "TEST SHA(abc)",
    ]
    assert len(SIGN_INPUT) == 128
    assert [len(msg) for _, _, msg, _ in SIGN_INPUT] == list(range(128))


@pytest.mark.parametrize("vector", RFC8032, ids=lambda v: v["name"])
def test_rfc8032(vector):
    secret = bytes.fromhex(vector["secret_key"])
    public = bytes.fromhex(vector["public_key"])
    message = bytes.fromhex(vector["message"])
    signature = bytes.fromhex(vector["signature"])
    assert ED25519.public_from_secret(secret) == public
    assert ED25519.sign(secret, message) == signature  # Ed25519 is deterministic
    assert ED25519.verify(public, message, signature) is True


def test_rfc8032_sha_abc_message():
    (vector,) = [v for v in RFC8032 if v["name"] == "TEST SHA(abc)"]
    assert bytes.fromhex(vector["message"]) == hashlib.sha512(b"abc").digest()


@pytest.mark.parametrize("index", range(128))
def test_sign_input(index):
    seed, public, message, signature = SIGN_INPUT[index]
    assert ED25519.public_from_secret(seed) == public
    assert ED25519.sign(seed, message) == signature
    assert ED25519.verify(public, message, signature) is True


def test_sign_input_rejects_tampering():
    # Not in the vector file: every signature must stop verifying when the message
    # or the signature changes, and another row's key must not verify it.
    for i, (_, public, message, signature) in enumerate(SIGN_INPUT):
        assert ED25519.verify(public, message + b"\x00", signature) is False
        bad_sig = bytes([signature[0] ^ 1]) + signature[1:]
        assert ED25519.verify(public, message, bad_sig) is False
        other_public = SIGN_INPUT[(i + 1) % len(SIGN_INPUT)][1]
        assert ED25519.verify(other_public, message, signature) is False
