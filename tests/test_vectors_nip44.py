"""NIP-44 v2 vectors (paulmillr/nip44 nip44.vectors.json, the file the NIP pins by SHA-256) against `kez_core.nip44`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kez_core import nip44
from kez_core.errors import DecodeError, Nip44Error

VECTORS_FILE = Path(__file__).parent / "vectors" / "nip44" / "nip44.vectors.json"
V2 = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["v2"]
VALID, INVALID = V2["valid"], V2["invalid"]


def _xonly(secret_hex: str) -> bytes:
    return coincurve.PrivateKey(bytes.fromhex(secret_hex)).public_key_xonly.format()


def test_file_is_the_one_the_nip_pins():
    assert hashlib.sha256(VECTORS_FILE.read_bytes()).hexdigest() == (
        "269ed0f69e4c192512cc779e78c555090cebc7c785b609e338a62afc3ce25040"
    )


def test_counts():
    assert len(VALID["get_conversation_key"]) == 35
    assert len(VALID["calc_padded_len"]) == 24
    assert len(VALID["encrypt_decrypt"]) == 10
    assert len(VALID["encrypt_decrypt_long_msg"]) == 3
    assert len(VALID["get_message_keys"]["keys"]) == 32
    assert len(INVALID["encrypt_msg_lengths"]) == 4
    assert len(INVALID["get_conversation_key"]) == 8
    assert len(INVALID["decrypt"]) == 12


def test_error_is_a_decode_error():
    assert issubclass(Nip44Error, DecodeError)
    assert Nip44Error.code == "nip44"


@pytest.mark.parametrize("v", VALID["get_conversation_key"], ids=lambda v: v["pub2"][:12])
def test_get_conversation_key(v):
    secret, public = bytes.fromhex(v["sec1"]), bytes.fromhex(v["pub2"])
    key = nip44.get_conversation_key(secret, public)
    assert key.hex() == v["conversation_key"]
    # cross-check the ECDH x coordinate against libsecp256k1 (coincurve), independently of OpenSSL
    shared_x = coincurve.PublicKey(b"\x02" + public).multiply(secret).format()[1:]
    assert hmac.digest(b"nip44-v2", shared_x, "sha256") == key


def test_get_message_keys():
    data = VALID["get_message_keys"]
    conversation_key = bytes.fromhex(data["conversation_key"])
    for k in data["keys"]:
        keys = nip44.get_message_keys(conversation_key, bytes.fromhex(k["nonce"]))
        assert keys.chacha_key.hex() == k["chacha_key"]
        assert keys.chacha_nonce.hex() == k["chacha_nonce"]
        assert keys.hmac_key.hex() == k["hmac_key"]


@pytest.mark.parametrize("pair", VALID["calc_padded_len"], ids=lambda p: str(p[0]))
def test_calc_padded_len(pair):
    unpadded, padded = pair
    assert nip44.calc_padded_len(unpadded) == padded


@pytest.mark.parametrize("v", VALID["encrypt_decrypt"], ids=lambda v: v["nonce"][:12])
def test_encrypt_decrypt(v):
    sec1, sec2 = bytes.fromhex(v["sec1"]), bytes.fromhex(v["sec2"])
    key = nip44.get_conversation_key(sec1, _xonly(v["sec2"]))
    assert key.hex() == v["conversation_key"]
    assert nip44.get_conversation_key(sec2, _xonly(v["sec1"])) == key  # symmetric
    payload = nip44.encrypt(v["plaintext"], key, bytes.fromhex(v["nonce"]))
    assert payload == v["payload"]
    assert nip44.decrypt(payload, key) == v["plaintext"]


@pytest.mark.parametrize("v", VALID["encrypt_decrypt_long_msg"], ids=lambda v: repr(v["pattern"]))
def test_encrypt_decrypt_long_msg(v):
    plaintext = v["pattern"] * v["repeat"]
    assert hashlib.sha256(plaintext.encode("utf-8")).hexdigest() == v["plaintext_sha256"]
    key = bytes.fromhex(v["conversation_key"])
    payload = nip44.encrypt(plaintext, key, bytes.fromhex(v["nonce"]))
    assert hashlib.sha256(payload.encode("ascii")).hexdigest() == v["payload_sha256"]
    assert nip44.decrypt(payload, key) == plaintext


@pytest.mark.parametrize("length", INVALID["encrypt_msg_lengths"])
def test_encrypt_rejects_length(length):
    with pytest.raises(Nip44Error):
        nip44.encrypt("a" * length, bytes(32), bytes(32))


@pytest.mark.parametrize("v", INVALID["get_conversation_key"], ids=lambda v: v["note"])
def test_get_conversation_key_rejects(v):
    with pytest.raises(Nip44Error):
        nip44.get_conversation_key(bytes.fromhex(v["sec1"]), bytes.fromhex(v["pub2"]))


@pytest.mark.parametrize("v", INVALID["decrypt"], ids=lambda v: v["note"])
def test_decrypt_rejects(v):
    with pytest.raises(Nip44Error):
        nip44.decrypt(v["payload"], bytes.fromhex(v["conversation_key"]))


def test_decrypt_error_messages_name_the_fault():
    notes = {v["note"]: v for v in INVALID["decrypt"]}
    expectations = {
        "unknown encryption version": "unknown encryption version",
        "unknown encryption version 0": "unknown encryption version 0",
        "invalid base64": "base64",
        "invalid MAC": "MAC",
        "invalid padding": "padding",
        "invalid payload length: 0": "version",  # the NIP rejects "" as an unknown version
        "invalid payload length: 4": "length",
        "invalid payload length: 48": "length",
        "invalid payload length: 92": "length",
    }
    for note, fragment in expectations.items():
        v = notes[note]
        with pytest.raises(Nip44Error, match=fragment):
            nip44.decrypt(v["payload"], bytes.fromhex(v["conversation_key"]))


def test_bad_argument_types_and_sizes():
    key = bytes(32)
    for call in [
        lambda: nip44.encrypt("x", bytes(31)),
        lambda: nip44.encrypt("x", key, bytes(31)),
        lambda: nip44.encrypt(b"x", key),  # type: ignore[arg-type]
        lambda: nip44.encrypt("\ud800", key),  # lone surrogate
        lambda: nip44.decrypt(b"AgAA", key),  # type: ignore[arg-type]
        lambda: nip44.decrypt(VALID["encrypt_decrypt"][0]["payload"], bytes(31)),
        lambda: nip44.get_conversation_key(bytes(31), bytes(32)),
        lambda: nip44.get_conversation_key(b"\x01" * 32, bytes(33)),
        lambda: nip44.get_message_keys(key, bytes(16)),
    ]:
        with pytest.raises(Nip44Error):
            call()


def test_random_nonce_roundtrip():
    v = VALID["encrypt_decrypt"][0]
    key = bytes.fromhex(v["conversation_key"])
    a, b = nip44.encrypt("hello", key), nip44.encrypt("hello", key)
    assert a != b  # fresh nonce each time
    assert nip44.decrypt(a, key) == nip44.decrypt(b, key) == "hello"
    assert base64.b64decode(a)[0] == 2


def test_decrypt_with_wrong_key_fails_mac():
    v = VALID["encrypt_decrypt"][0]
    with pytest.raises(Nip44Error, match="MAC"):
        nip44.decrypt(v["payload"], bytes(32))


_KEY = bytes.fromhex(VALID["encrypt_decrypt"][0]["conversation_key"])
_VALID_DATA = base64.b64decode(VALID["encrypt_decrypt"][0]["payload"])


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.text(
            alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
            min_size=120,
            max_size=400,
        ),
        st.binary(min_size=0, max_size=400).map(lambda b: base64.b64encode(b).decode()),
        st.binary(min_size=97, max_size=300).map(lambda b: base64.b64encode(b"\x02" + b).decode()),
        # a real payload with bytes flipped: must fail the MAC, never decrypt to something
        st.lists(st.integers(0, len(_VALID_DATA) - 1), min_size=1, max_size=4).map(
            lambda idx: base64.b64encode(
                bytes(c ^ (0x5A if i in idx else 0) for i, c in enumerate(_VALID_DATA))
            ).decode()
        ),
    )
)
def test_decrypt_garbage_raises_typed_error(payload):
    with pytest.raises(Nip44Error):
        nip44.decrypt(payload, _KEY)
