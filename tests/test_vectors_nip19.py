"""NIP-19 vectors (NIP text, rust-nostr, nostr-tools) and BIP-173 bech32 vectors against `kez_core.nip19`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kez_core import nip19
from kez_core.errors import KeyFormatError

VECTORS = Path(__file__).parent / "vectors" / "nip19"
DATA = json.loads((VECTORS / "nip19.vectors.json").read_text(encoding="utf-8"))
BIP173 = json.loads((VECTORS / "bip173-bech32.json").read_text(encoding="utf-8"))

BARE = {"npub", "nsec", "note"}
TLV = {"nprofile", "nevent", "naddr"}
# Our encoder writes TLVs as special, relays, author, kind. The nostr-tools naddr "banana"
# puts author and kind before its relays, so re-encoding it gives another (equally valid)
# string: for it we compare by decoding. Every other TLV vector re-encodes exactly.
REORDERED = {
    "naddr1qqrxyctwv9hxzq3q80cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsxpqqqp65wqfwwaehxw309aex2mrp0yhxummnw3ezuetcv9khqmr99ekhjer0d4skjm3wv4uxzmtsd3jjucm0d5q3vamnwvaz7tmwdaehgu3wvfskuctwvyhxxmmd0zfmwx",
}


def _id(entry) -> str:
    return entry["bech32"][:24]


def _tlv_bytes(items) -> bytes:
    out = bytearray()
    for item in items:
        if "value_hex" in item:
            value = bytes.fromhex(item["value_hex"])
        else:
            value = str(item["value"]).encode("utf-8")
        out += bytes([item["type"], len(value)]) + value
    return bytes(out)


def test_counts():
    hrps = [e["hrp"] for e in DATA["valid"]]
    assert {h: hrps.count(h) for h in set(hrps)} == {
        "npub": 4,
        "nsec": 3,
        "note": 2,
        "nprofile": 3,
        "nevent": 2,
        "naddr": 4,
        "ncryptsec": 1,
    }
    assert (len(DATA["invalid"]), len(DATA["edge_cases"])) == (7, 1)
    assert (len(BIP173["valid"]), len(BIP173["invalid"])) == (7, 12)


@pytest.mark.parametrize("entry", DATA["valid"], ids=_id)
def test_valid_decode(entry):
    entity = nip19.decode(entry["bech32"])
    assert entity.hrp == entry["hrp"]
    if entry["hrp"] in BARE:
        assert entity.data == bytes.fromhex(entry["hex"])
    elif entry["hrp"] == "ncryptsec":
        assert entity.data == bytes.fromhex(entry["payload_hex"])
    else:
        assert entity.data == entry["decoded"]
        # the listed TLVs, in payload order, are exactly the bech32 payload
        assert nip19.bech32_check(entry["bech32"]) == (entry["hrp"], _tlv_bytes(entry["tlv"]))


@pytest.mark.parametrize("entry", DATA["valid"], ids=_id)
def test_valid_reencode(entry):
    hrp = entry["hrp"]
    if hrp in BARE:
        assert nip19.encode(hrp, bytes.fromhex(entry["hex"])) == entry["bech32"]
    elif hrp == "ncryptsec":
        assert nip19.encode(hrp, bytes.fromhex(entry["payload_hex"])) == entry["bech32"]
    else:
        text = nip19.encode(hrp, entry["decoded"])
        if entry["bech32"] in REORDERED:
            assert text != entry["bech32"]
            assert nip19.decode(text) == nip19.decode(entry["bech32"])
        else:
            assert text == entry["bech32"]


def test_reordered_list_is_exact():
    """REORDERED names exactly the TLV vectors whose item order is not ours."""
    ours = []
    for entry in DATA["valid"]:
        if entry["hrp"] in TLV and nip19.encode(entry["hrp"], entry["decoded"]) != entry["bech32"]:
            ours.append(entry["bech32"])
    assert set(ours) == REORDERED


@pytest.mark.parametrize("entry", DATA["valid"], ids=_id)
def test_valid_uppercase_and_uri_forms(entry):
    expected = nip19.decode(entry["bech32"])
    assert nip19.decode(entry["bech32"].upper()) == expected
    assert nip19.decode("nostr:" + entry["bech32"]) == expected


@pytest.mark.parametrize("entry", DATA["invalid"], ids=_id)
def test_invalid(entry):
    with pytest.raises(KeyFormatError):
        nip19.decode(entry["bech32"])


@pytest.mark.parametrize("entry", DATA["edge_cases"], ids=_id)
def test_edge_case_64_byte_author_is_absent(entry):
    entity = nip19.decode(entry["bech32"])
    assert entity.hrp == "nevent"
    assert "author" not in entity.data
    assert entity.data["id"] == entry["decoded"]["id"]
    assert entity.data["relays"] == entry["decoded"]["relays"]
    assert len(bytes.fromhex(entry["decoded"]["author"])) == 64  # what the payload holds
    assert nip19.bech32_check(entry["bech32"]) == ("nevent", _tlv_bytes(entry["tlv"]))


@pytest.mark.parametrize("text", BIP173["valid"])
def test_bip173_valid(text):
    hrp, _payload = nip19.bech32_check(text)
    assert hrp == text[: text.rfind("1")].lower()


@pytest.mark.parametrize("entry", BIP173["invalid"], ids=lambda e: repr(e["string"])[:30])
def test_bip173_invalid(entry):
    if entry["reason"] == "overall max length exceeded":
        # BIP-173's 90-character cap; nostr decoders do not apply it (README), so it decodes.
        assert len(entry["string"]) > 90
        hrp, payload = nip19.bech32_check(entry["string"])
        assert (len(hrp), payload) == (84, b"")
        return
    with pytest.raises(KeyFormatError):
        nip19.bech32_check(entry["string"])


GARBAGE = [
    "",
    "1",
    "npub1",
    "npub",
    "nevent1qq5v4rkz" * 50,
    "npub1" + "q" * 6000,  # over our length bound
    "note1" + "q" * 300,  # bad checksum, long
    "nprofile1qqqqqqqqqqqqqsx5mml",
    "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w7",  # last char changed
    "NPUB180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6",  # mixed case
    "nsec1" + nip19.encode("npub", bytes(32))[5:],  # checksum for another hrp
    nip19.encode_bytes("npub", bytes(31)),  # wrong length
    nip19.encode_bytes("nprofile", bytes([0, 31]) + bytes(31)),  # special TLV too short
    nip19.encode_bytes("nevent", bytes([1, 3]) + b"wss"),  # no id TLV
    nip19.encode_bytes(
        "nevent", bytes([0, 32]) + bytes(32) + bytes([3, 2, 0, 1])
    ),  # kind not 4 bytes
    nip19.encode_bytes("naddr", bytes([0, 1]) + b"x"),  # no author/kind
    nip19.encode_bytes(
        "nprofile", bytes([0, 32]) + bytes(32) + bytes([1, 2, 0xFF, 0xFE])
    ),  # relay not UTF-8
    nip19.encode_bytes("nevent", bytes([0, 40]) + bytes(32)),  # TLV claims more than remains
    nip19.encode_bytes("nfoo", bytes(32)),  # unknown prefix
    None,
    b"npub1",
]


@pytest.mark.parametrize("text", GARBAGE, ids=lambda t: repr(t)[:30])
def test_garbage_raises_key_format_error(text):
    with pytest.raises(KeyFormatError):
        nip19.decode(text)
