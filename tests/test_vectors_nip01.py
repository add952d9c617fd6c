"""NIP-01 event vectors (real signed events from go-nostr / rust-nostr tests) against `kez_core.nostr_event`."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from kez_core.builtins.bip340 import schnorr_verify
from kez_core.errors import KeyFormatError, SchemaError
from kez_core.nostr_event import event_id, serialize_event, sign_event, verify_event

DATA = json.loads(
    (Path(__file__).parent / "vectors" / "nip01" / "events.json").read_text(encoding="utf-8")
)
VALID = DATA["valid"]
INVALID = DATA["invalid"]


def _id(entry) -> str:
    ev = entry["event"]
    return f"kind{ev['kind']}-{ev['id'][:8]}"


def test_counts():
    assert (len(VALID), len(INVALID)) == (48, 10)


@pytest.mark.parametrize("entry", VALID, ids=_id)
def test_valid_event_by_hand(entry):
    """The NIP-01 recipe written out in the test, independent of our module."""
    ev = entry["event"]
    text = json.dumps(
        [0, ev["pubkey"], ev["created_at"], ev["kind"], ev["tags"], ev["content"]],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert text == entry["serialized"]
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    assert digest.hex() == ev["id"]
    assert schnorr_verify(bytes.fromhex(ev["pubkey"]), digest, bytes.fromhex(ev["sig"])) is True


@pytest.mark.parametrize("entry", VALID, ids=_id)
def test_valid_event_module(entry):
    ev = entry["event"]
    assert serialize_event(ev) == entry["serialized"].encode("utf-8")
    assert event_id(ev) == ev["id"]
    assert verify_event(ev) is True


@pytest.mark.parametrize("entry", VALID, ids=_id)
def test_valid_event_tampered_is_rejected(entry):
    ev = copy.deepcopy(entry["event"])
    ev["content"] += " "
    assert verify_event(ev) is False
    ev = copy.deepcopy(entry["event"])
    ev["sig"] = ev["sig"][:-1] + ("0" if ev["sig"][-1] != "0" else "1")
    assert verify_event(ev) is False


@pytest.mark.parametrize("entry", INVALID, ids=_id)
def test_invalid_event(entry):
    ev = entry["event"]
    assert entry["expect"] == {"id_matches": False, "sig_valid_over_stated_id": True}
    assert serialize_event(ev) == entry["serialized"].encode("utf-8")
    assert event_id(ev) == entry["sha256_of_serialized"] != ev["id"]
    # The signature itself is fine over the stated id; full validation must still fail.
    assert schnorr_verify(
        bytes.fromhex(ev["pubkey"]), bytes.fromhex(ev["id"]), bytes.fromhex(ev["sig"])
    )
    assert verify_event(ev) is False


def test_escaping_matches_nip01():
    """NIP-01: escape only \\n \\" \\\\ \\r \\t \\b \\f; everything else verbatim (see module doc for other C0)."""
    content = 'a\nb"c\\d\re\tf\bg\fh \u007f \u2028 é 🦀 <>&/'
    ev = {
        "pubkey": "0" * 64,
        "created_at": 1,
        "kind": 1,
        "tags": [["t", content]],
        "content": content,
    }
    expected_str = 'a\\nb\\"c\\\\d\\re\\tf\\bg\\fh \u007f \u2028 é 🦀 <>&/'
    assert serialize_event(ev) == (
        f'[0,"{"0" * 64}",1,1,[["t","{expected_str}"]],"{expected_str}"]'.encode()
    )
    # Other C0 controls come out as \u00XX, as JSON.stringify / serde_json / go-nostr write them.
    ev["content"] = "\x00\x01\x1f"
    ev["tags"] = []
    assert serialize_event(ev).endswith(b'"\\u0000\\u0001\\u001f"]')


MALFORMED = [
    None,
    [],
    "event",
    {},
    {"pubkey": "0" * 64, "created_at": 1, "kind": 1, "tags": [], "content": ""},  # no id / sig
]


def _base_event() -> dict:
    return copy.deepcopy(VALID[1]["event"])


def _mutations():
    for key, value in [
        ("pubkey", "AB" * 32),  # uppercase hex
        ("pubkey", "ab" * 31),
        ("pubkey", 123),
        ("pubkey", "ff" * 32),  # not on the curve: verify must say False, not raise
        ("id", "zz" * 32),
        ("id", None),
        ("sig", "00" * 63),
        ("sig", b"\x00" * 64),
        ("created_at", "1640839235"),
        ("created_at", 1640839235.0),
        ("created_at", True),
        ("created_at", -1),
        ("kind", 70000),
        ("kind", None),
        ("tags", [["p", 1]]),
        ("tags", ["p"]),
        ("tags", None),
        ("content", None),
        ("content", "\ud800"),  # lone surrogate
    ]:
        ev = _base_event()
        ev[key] = value
        yield pytest.param(ev, id=f"{key}={value!r}"[:40])
    ev = _base_event()
    del ev["content"]
    yield pytest.param(ev, id="no-content")


@pytest.mark.parametrize("event", MALFORMED + list(_mutations()))
def test_verify_event_never_raises(event):
    assert verify_event(event) is False


def test_serialize_rejects_malformed_with_schema_error():
    ev = _base_event()
    ev["kind"] = "1"
    with pytest.raises(SchemaError):
        serialize_event(ev)
    with pytest.raises(SchemaError):
        event_id({"content": ""})


def test_sign_event_roundtrip():
    secret = bytes.fromhex("b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfef")
    ev = sign_event(
        secret, 1, 'hello\n"nostr" 🦀', [["t", "kez"]], 1_700_000_000, aux_rand=bytes(32)
    )
    assert list(ev) == ["id", "pubkey", "created_at", "kind", "tags", "content", "sig"]
    assert ev["pubkey"] == "dff1d77f2a671c5f36183726db2341be58feae1da2deced843240f7b502ba659"
    assert ev["id"] == hashlib.sha256(serialize_event(ev)).hexdigest()
    assert verify_event(ev) is True
    # deterministic with fixed aux_rand; fresh randomness by default still verifies
    assert (
        sign_event(secret, 1, ev["content"], ev["tags"], ev["created_at"], aux_rand=bytes(32)) == ev
    )
    assert verify_event(sign_event(secret, 0, "")) is True


def test_sign_event_rejects_bad_input():
    with pytest.raises(KeyFormatError):
        sign_event(b"\x00" * 32, 1, "x", [], 1)
    with pytest.raises(SchemaError):
        sign_event(b"\x01" * 32, -1, "x", [], 1)


def test_verify_event_pubkey_off_curve_with_matching_id():
    # The id check passes, so this reaches the signature check with an x that is not on
    # secp256k1 (BIP-340 vector 5's public key): False, not an exception.
    ev = _base_event()
    ev["pubkey"] = "eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34"
    ev["id"] = event_id(ev)
    assert verify_event(ev) is False
