"""HPKE (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256) vectors in tests/vectors/hpke/.

KEZ has no HPKE of its own yet: its envelopes will use `cryptography`'s
`hpke.Suite`, which is single-shot (sequence 0), takes no AAD, has no export
and draws its own ephemeral key, so it cannot reproduce these vectors. They
are checked with pyhpke (a maintained HPKE library on top of `cryptography`),
which can fix the ephemeral key:

- DeriveKeyPair(ikmR/ikmE) gives skRm/pkRm and skEm/pkEm; with skEm fixed the
  sender's `enc` is the vector's; every encryption (RFC 9180 A.1.1/A.2.1:
  sequence 0, 1, 2, 4, 255, 256; cfrg 779d028: 0..256) seals to `ct` and opens
  back to `pt`; every export equals `exported_value`. The key-schedule
  intermediates (shared_secret, key, base_nonce, ...) are not public in pyhpke.
- Bridge: with each vector's recipient key pair, a single-shot message sealed
  by pyhpke (sequence 0, empty AAD, the vector's info) opens with
  `hpke.Suite.decrypt`, and one from `hpke.Suite.encrypt` opens with pyhpke.
  Since pyhpke reproduces the vectors, this ties the `Suite` KEZ will use to
  RFC 9180 for every AEAD it shares with the vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey, KEMKeyPair

VECTORS = Path(__file__).parent / "vectors" / "hpke"
RFC9180 = json.loads((VECTORS / "x25519-hkdfsha256.json").read_text())
CFRG = json.loads((VECTORS / "x25519-hkdfsha256-cfrg-779d028.json").read_text())


def _cases() -> list[tuple[str, dict, list[tuple[int, bytes, bytes, bytes]]]]:
    """(test id, vector, [(sequence, pt, aad, ct)]) for both files, in one shape."""
    cases = []
    for v in RFC9180:
        encs = [
            (e["sequence_number"], *(bytes.fromhex(e[k]) for k in ("pt", "aad", "ct")))
            for e in v["encryptions"]
        ]
        cases.append((f"rfc9180-{v['rfc9180_appendix']}-{AEADId(v['aead_id']).name}", v, encs))
    for i, v in enumerate(CFRG):
        encs = [
            (seq, *(bytes.fromhex(e[k]) for k in ("plaintext", "aad", "ciphertext")))
            for seq, e in enumerate(v["encryptions"])
        ]
        cases.append((f"cfrg-779d028-{i}-{AEADId(v['aead_id']).name}", v, encs))
    return cases


CASES = _cases()
IDS = [case_id for case_id, _, _ in CASES]

# What `cryptography`'s Suite calls each AEAD of the vectors.
SUITE_AEAD = {
    AEADId.AES128_GCM: hpke.AEAD.AES_128_GCM,
    AEADId.AES256_GCM: hpke.AEAD.AES_256_GCM,
    AEADId.CHACHA20_POLY1305: hpke.AEAD.CHACHA20_POLY1305,
}


def _suite(v: dict) -> CipherSuite:
    assert (v["mode"], v["kem_id"], v["kdf_id"]) == (0, 0x20, 1)
    return CipherSuite.new(KEMId(v["kem_id"]), KDFId(v["kdf_id"]), AEADId(v["aead_id"]))


def _h(v: dict, field: str) -> bytes:
    return bytes.fromhex(v[field])


def test_counts():
    assert [(v["rfc9180_appendix"], v["aead_id"]) for v in RFC9180] == [("A.1.1", 1), ("A.2.1", 3)]
    assert [v["aead_id"] for v in CFRG] == [1, 2, 3]
    for case_id, v, encs in CASES:
        expected = [0, 1, 2, 4, 255, 256] if case_id.startswith("rfc") else list(range(257))
        assert [seq for seq, *_ in encs] == expected
        assert len(v["exports"]) == 3


@pytest.mark.parametrize(("v",), [(v,) for _, v, _ in CASES], ids=IDS)
def test_derive_key_pair(v):
    kem = _suite(v).kem
    for who in ("R", "E"):
        pair = kem.derive_key_pair(_h(v, f"ikm{who}"))
        assert pair.private_key.to_private_bytes() == _h(v, f"sk{who}m")
        assert pair.public_key.to_public_bytes() == _h(v, f"pk{who}m")


def _contexts(v: dict):
    """Sender context with the vector's ephemeral key, and the recipient's from the vector's enc."""
    suite = _suite(v)
    eks = KEMKeyPair(
        suite.kem.deserialize_private_key(_h(v, "skEm")),
        suite.kem.deserialize_public_key(_h(v, "pkEm")),
    )
    pkr = suite.kem.deserialize_public_key(_h(v, "pkRm"))
    enc, sender = suite.create_sender_context(pkr, _h(v, "info"), eks=eks)
    assert enc == _h(v, "enc") == _h(v, "pkEm")
    skr = suite.kem.deserialize_private_key(_h(v, "skRm"))
    recipient = suite.create_recipient_context(_h(v, "enc"), skr, _h(v, "info"))
    return sender, recipient


@pytest.mark.parametrize(("v", "encs"), [(v, encs) for _, v, encs in CASES], ids=IDS)
def test_encryptions(v, encs):
    sender, recipient = _contexts(v)
    seq = 0
    for target, pt, aad, ct in encs:
        while seq < target:  # pyhpke has no seek: advance both sides with a throwaway message
            assert recipient.open(sender.seal(b"")) == b""
            seq += 1
        assert sender.seal(pt, aad) == ct, f"sequence {target}"
        assert recipient.open(ct, aad) == pt, f"sequence {target}"
        seq += 1


@pytest.mark.parametrize(("v",), [(v,) for _, v, _ in CASES], ids=IDS)
def test_exports(v):
    sender, recipient = _contexts(v)
    for e in v["exports"]:
        context, length, value = _h(e, "exporter_context"), e["L"], _h(e, "exported_value")
        assert sender.export(context, length) == value
        assert recipient.export(context, length) == value


@pytest.mark.parametrize(("v", "encs"), [(v, encs) for _, v, encs in CASES], ids=IDS)
def test_bridge_to_cryptography_suite(v, encs):
    aead = AEADId(v["aead_id"])
    if aead not in SUITE_AEAD:
        pytest.fail(f"no cryptography hpke.Suite AEAD mapped for {aead.name}")
    crypto = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, SUITE_AEAD[aead])
    sk_r = X25519PrivateKey.from_private_bytes(_h(v, "skRm"))
    pk_r = sk_r.public_key()
    assert pk_r.public_bytes_raw() == _h(v, "pkRm")
    info = _h(v, "info")
    pt = encs[0][1]
    suite = _suite(v)

    # pyhpke seals (fresh ephemeral key, sequence 0, empty AAD); cryptography opens.
    enc, sender = suite.create_sender_context(KEMKey.from_pyca_cryptography_key(pk_r), info)
    blob = enc + sender.seal(pt)
    assert crypto.decrypt(blob, sk_r, info=info) == pt
    with pytest.raises(InvalidTag):
        crypto.decrypt(blob, sk_r, info=info + b"!")

    # cryptography seals; pyhpke opens (enc is the first 32 bytes, Nenc for X25519).
    blob = crypto.encrypt(pt, pk_r, info=info)
    recipient = suite.create_recipient_context(
        blob[:32], KEMKey.from_pyca_cryptography_key(sk_r), info
    )
    assert recipient.open(blob[32:]) == pt
