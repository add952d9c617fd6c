"""The ed25519 verifier (libsodium first, OpenSSL on refusal) must give exactly OpenSSL's verdicts.

`kez_core.builtins.ed25519` explains why: libsodium is stricter than OpenSSL
(it also refuses small-order and non-canonical A and small-order R), so its
acceptance implies OpenSSL's, and its refusal is re-checked by OpenSSL. Here
the combined verdict is compared with `cryptography`'s on random, signed and
mutated inputs, on small-order and non-canonical points (where the two
libraries disagree, so the fallback decides) and on the RFC 8032 vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kez_core.builtins import ed25519
from kez_core.builtins.ed25519 import ED25519, openssl_accepts, sodium_accepts

VECTORS = Path(__file__).parent / "vectors" / "ed25519"
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493

# Encodings of the points of small order (the list libsodium refuses), canonical
# and not (y >= p), with and without the sign bit.
_SMALL_ORDER_Y = [
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p - 1, order 2
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p (= 0), non-canonical
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p + 1 (= 1), non-canonical
]
SMALL_ORDER = [bytes.fromhex(h) for h in _SMALL_ORDER_Y] + [
    bytes.fromhex(h)[:31] + bytes([bytes.fromhex(h)[31] | 0x80]) for h in _SMALL_ORDER_Y
]
# Non-canonical encodings y = p + k of small y (most are not on the curve; the
# verdicts must agree either way).
NON_CANONICAL = [(P + k).to_bytes(32, "little") for k in range(2, 19)]


def _key(seed: bytes) -> tuple[Ed25519PrivateKey, bytes]:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return key, key.public_key().public_bytes_raw()


def _agree(public: bytes, message: bytes, signature: bytes) -> bool:
    """Assert the combined verdict equals OpenSSL's; return it."""
    expected = openssl_accepts(public, message, signature)
    assert ED25519.verify(public, message, signature) is expected, (
        public.hex(),
        message.hex(),
        signature.hex(),
    )
    if sodium_accepts(public, message, signature):  # the premise of the design
        assert expected
    return expected


def test_libsodium_is_in_use():
    assert ed25519._sodium_open is not None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=300))
def test_signed_messages_verify(seed, message):
    key, public = _key(seed)
    signature = key.sign(message)
    assert _agree(public, message, signature) is True
    assert sodium_accepts(public, message, signature)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.binary(min_size=32, max_size=32),
    message=st.binary(max_size=200),
    target=st.sampled_from(["sig", "key", "msg"]),
    index=st.integers(min_value=0, max_value=10_000),
    bit=st.integers(min_value=0, max_value=7),
)
def test_mutations_agree(seed, message, target, index, bit):
    key, public = _key(seed)
    signature = key.sign(message)

    def flip(data: bytes) -> bytes:
        if not data:
            return b"\x01"
        i = index % len(data)
        return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]

    if target == "sig":
        assert _agree(public, message, flip(signature)) is False
    elif target == "key":
        _agree(flip(public), message, signature)
    else:
        assert _agree(public, flip(message), signature) is False


@settings(max_examples=300)
@given(
    public=st.binary(min_size=32, max_size=32),
    message=st.binary(max_size=64),
    signature=st.binary(min_size=64, max_size=64),
)
def test_random_inputs_agree(public, message, signature):
    _agree(public, message, signature)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.binary(min_size=32, max_size=32),
    message=st.binary(max_size=64),
    multiple=st.integers(1, 15),
)
def test_non_canonical_s_agree(seed, message, multiple):
    # S + k·L encodes the same scalar; both libraries must refuse S >= L.
    key, public = _key(seed)
    signature = key.sign(message)
    s = int.from_bytes(signature[32:], "little") + multiple * L
    if s < 2**256:
        assert _agree(public, message, signature[:32] + s.to_bytes(32, "little")) is False


@pytest.mark.parametrize(
    "public", SMALL_ORDER + NON_CANONICAL, ids=lambda b: b.hex()[:8] + b.hex()[-2:]
)
def test_small_order_and_non_canonical_keys_agree(public):
    # With A and R of small order and S = 0 the cofactorless equation can hold:
    # OpenSSL accepts some of these, libsodium refuses them all, so the fallback
    # must give OpenSSL's answer.
    # (over all keys below, OpenSSL accepts 28 of these combinations, libsodium none)
    for r in SMALL_ORDER + NON_CANONICAL:
        for s in (bytes(32), (1).to_bytes(32, "little")):
            for message in (b"", b"kez", bytes(range(64))):
                _agree(public, message, r + s)


def test_fallback_decides_where_libraries_differ():
    # The identity as key, the identity as R and S = 0 satisfy [S]B = R + [k]A for
    # every message: OpenSSL accepts, libsodium refuses (small order). The combined
    # verifier must accept, as OpenSSL does.
    identity = bytes.fromhex(_SMALL_ORDER_Y[1])
    signature = identity + bytes(32)
    assert not sodium_accepts(identity, b"any message", signature)
    assert openssl_accepts(identity, b"any message", signature)
    assert ED25519.verify(identity, b"any message", signature) is True


@pytest.mark.parametrize(
    "vector", json.loads((VECTORS / "rfc8032.json").read_text()), ids=lambda v: v["name"]
)
def test_rfc8032_vectors_agree(vector):
    public = bytes.fromhex(vector["public_key"])
    message = bytes.fromhex(vector["message"])
    signature = bytes.fromhex(vector["signature"])
    assert _agree(public, message, signature) is True
    assert sodium_accepts(public, message, signature)
    assert _agree(public, message + b"x", signature) is False


def test_sign_input_vectors_agree():
    for line in (VECTORS / "sign.input.first128").read_text().splitlines():
        _sk, pk, msg, sigmsg = (bytes.fromhex(f) for f in line.split(":")[:4])
        assert _agree(pk, msg, sigmsg[:64]) is True
        assert _agree(pk, msg, sigmsg[:63] + bytes([sigmsg[63] ^ 0x40])) is False


def test_wrong_lengths_and_types():
    key, public = _key(bytes(range(32)))
    signature = key.sign(b"m")
    assert ED25519.verify(public[:31], b"m", signature) is False
    assert ED25519.verify(public, b"m", signature[:63]) is False
    # messages other than bytes skip libsodium and get OpenSSL's verdict
    assert ED25519.verify(public, bytearray(b"m"), signature) is True
    assert ED25519.verify(public, memoryview(b"m"), signature) is True
