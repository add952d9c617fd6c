"""The claim-verification fast paths give exactly the general paths' answers.

- BIP-340: the direct libsecp256k1 call in `builtins.bip340` against
  coincurve's own `PublicKeyXOnly.verify`, on valid, mutated and random input;
- `codec.object_from_json`'s canonical path against the strict parse plus
  `SignedObject.from_dict`, on canonical text and mutations of it;
- `encoding.decode_any`'s compact shortcut against detection in priority order;
- the constructor-free builders against the attrs classes they fill.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import timedelta

import attrs
import coincurve
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kez_core.builtins import bip340, ed25519, encodings
from kez_core.builtins.bip340 import BIP340, schnorr_sign, schnorr_verify
from kez_core.claim import check_claim, create_claim
from kez_core.codec import (
    COMPACT_TOKEN,
    compact_decode,
    compact_encode,
    object_from_json,
    parse_json,
)
from kez_core.encoding import _detect, decode_any, encode
from kez_core.errors import DecodeError, KezError
from kez_core.keys import Signer
from kez_core.registry import Registry
from kez_core.signed import (
    Signature,
    SignedObject,
    _trusted_signature,
    claim_if_canonical,
    object_if_canonical,
    sign,
)
from kez_core.status import ClaimCheck, Status, claim_check
from kez_core.timefmt import now

from kez_core import hookimpl

REGISTRY = Registry(plugins=[ed25519, bip340, encodings], entry_points=False, env={})
FUZZ = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


# --------------------------------------------------------------------------- BIP-340


def _coincurve_verdict(public: bytes, message: bytes, signature: bytes) -> bool:
    """What the wrapper says: the verdict the direct call must reproduce."""
    if len(public) != 32 or len(signature) != 64:
        return False
    try:
        return coincurve.PublicKeyXOnly(public).verify(signature, message)
    except (ValueError, TypeError):
        return False


def _keys(n: int) -> list[tuple[bytes, bytes]]:
    out = []
    for _ in range(n):
        secret = coincurve.PrivateKey().secret
        out.append((secret, BIP340.public_from_secret(secret)))
    return out


KEYS = _keys(4)
P = 2**256 - 2**32 - 977
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@FUZZ
@given(
    key=st.sampled_from(KEYS),
    message=st.binary(max_size=200),
    flip=st.one_of(st.none(), st.integers(0, 64 * 8 - 1)),
    flip_message=st.booleans(),
)
def test_bip340_direct_call_matches_coincurve(key, message, flip, flip_message):
    secret, public = key
    digest = hashlib.sha256(message).digest()
    signature = bytearray(schnorr_sign(secret, digest))
    if flip is not None:
        signature[flip // 8] ^= 1 << (flip % 8)
    signature = bytes(signature)
    signed_message = message + b"x" if flip_message else message
    expected = _coincurve_verdict(public, hashlib.sha256(signed_message).digest(), signature)
    assert BIP340.verify(public, signed_message, signature) is expected
    assert schnorr_verify(public, hashlib.sha256(signed_message).digest(), signature) is expected
    if flip is None and not flip_message:
        assert expected is True


@FUZZ
@given(
    public=st.binary(min_size=30, max_size=34),
    message=st.binary(max_size=64),
    signature=st.binary(min_size=62, max_size=66),
)
def test_bip340_random_input_matches_coincurve(public, message, signature):
    assert schnorr_verify(public, message, signature) is _coincurve_verdict(
        public, message, signature
    )
    assert BIP340.verify(public, message, signature) is _coincurve_verdict(
        public, hashlib.sha256(message).digest(), signature
    )


def test_bip340_edge_values_match_coincurve():
    secret, public = KEYS[0]
    digest = hashlib.sha256(b"edge").digest()
    good = schnorr_sign(secret, digest)
    r, s = good[:32], good[32:]
    cases = [
        good,
        P.to_bytes(32, "big") + s,  # r = p
        (P + 1).to_bytes(32, "big")[-32:] + s if P + 1 < 2**256 else good,
        r + N.to_bytes(32, "big"),  # s = n
        r + (2**256 - 1).to_bytes(32, "big"),
        bytes(64),
        b"\xff" * 64,
    ]
    publics = [public, bytes(32), b"\xff" * 32, P.to_bytes(32, "big"), (5).to_bytes(32, "big")]
    for pub in publics:
        for sig in cases:
            for msg in (digest, b"", b"short", os.urandom(100)):
                assert schnorr_verify(pub, msg, sig) is _coincurve_verdict(pub, msg, sig)
    # non-bytes input: False, never an exception (as through the wrapper)
    assert schnorr_verify(public, "text", good) is False  # type: ignore[arg-type]
    assert BIP340.verify(bytearray(public), b"m", good) is False  # type: ignore[arg-type]


# --------------------------------------------------------------------------- canonical JSON path


def _strict(data: str | bytes) -> SignedObject:
    return SignedObject.from_dict(parse_json(data))


def _outcome(fn, data):
    try:
        obj = fn(data)
    except KezError as exc:
        return ("error", type(exc).__name__, exc.message)
    return ("ok", obj, obj.canonical(), obj.payload_bytes, obj.id)


SIGNERS = [Signer.generate("nostr", REGISTRY), Signer.generate("ed25519", REGISTRY)]
CLAIMS = [create_claim(s, f"github:user{i}", registry=REGISTRY) for i, s in enumerate(SIGNERS)] + [
    create_claim(SIGNERS[0], "dns:example.org", expires_in=timedelta(days=30), registry=REGISTRY),
    sign(
        "claim",
        {
            "primary": SIGNERS[1].key_id,
            "subject": "ap:a@b.org",
            "created_at": "2026-01-01T00:00:00Z",
            "nonce": "0" * 32,
        },
        SIGNERS[1],
        namespace="x",
    ),
]
CANONICAL = [c.canonical().decode("ascii") for c in CLAIMS]
CANONICAL_IDS = ["nostr", "ed25519", "expiring", "namespaced"]

MUTATIONS = [
    lambda t: t,
    lambda t: t.replace('"kez":"claim"', '"kez":"claim","kez":"claim"'),
    lambda t: t.replace('"version":1', '"version":1,"version":1'),
    lambda t: t.replace('"alg":', '"alg":"x","alg":'),
    lambda t: t.replace('"version":1', '"version":1.0'),
    lambda t: t.replace('"version":1', '"version":-0'),
    lambda t: t.replace('"version":1', '"version":9007199254740993'),
    lambda t: t.replace('"version":1', '"version":2'),
    lambda t: t.replace('"version":1', '"version":true'),
    lambda t: t.replace('"version":1', '"version":"1"'),
    lambda t: t.replace('"version":1', '"version":18446744073709551617'),
    lambda t: t.replace('"version":1', '"version":1,"zz":9007199254740993'),
    lambda t: t.replace('"version":1', '"version":1,"zz":9007199254740991'),
    lambda t: t.replace('"version":1', '"version":1,"zz":-1.5'),
    lambda t: t.replace('"type":"kez.claim"', '"type":"kez.claim","u":12'),
    lambda t: t.replace('"nonce":"', '"nonce":1,"x":"'),
    lambda t: t.replace('"created_at":"', '"created_at":"', 1).replace(
        '"nonce":', '"expires_at":"2999-01-01T00:00:00Z","nonce":'
    ),
    lambda t: t.replace('"nonce":', '"expires_at":null,"nonce":'),
    lambda t: t.replace('"nonce":', '"expires_at":7,"nonce":'),
    lambda t: t.replace(',"payload":', ', "payload":'),
    lambda t: t.replace('"type":"kez.claim"', '"type":"kez.link"'),
    lambda t: t.replace('"type":"kez.claim"', '"type":"kez.x.claim"'),
    lambda t: t.replace('"type":"kez.claim"', '"type":"kez\\u002eclaim"'),
    lambda t: t.replace('"type":"kez.claim"', '"type":"kez\\/claim"'),
    lambda t: t.replace('"type":"kez.claim"', '"type":"kez.claim","z":"\\n"'),
    lambda t: t.replace('"type":"kez.claim"', '"type":"kez.claim","z":[1,{"a":null,"b":true}]'),
    lambda t: t.replace('"type":"kez.claim"', '"type":"kez.claim","a":1'),  # out of order
    lambda t: t.replace('"sig":"', '"sig":"A'),
    lambda t: t.replace('"sig":"', '"sig":"0')[:-3] + '"}}',
    lambda t: t.replace('"sig":"', '"extra":1,"sig":"'),
    lambda t: t[:-1] + ',"zzz":1}',
    lambda t: t[:-1],
    lambda t: t + " ",
    lambda t: t.replace('"key":"', '"key":"X'),
    lambda t: t.replace('"alg":"', '"alg":"\\t'),
    lambda t: t.replace('"kez":"claim"', '"kez":"Claim"'),
    lambda t: t.replace('"kez":"claim"', '"kez":["claim"]'),
    lambda t: t.replace('"signature":{', '"signature":["x",{').replace('"}}', '"}]}'),
]


@pytest.mark.parametrize("index", range(len(MUTATIONS)))
@pytest.mark.parametrize("text", CANONICAL, ids=CANONICAL_IDS)
def test_canonical_path_matches_strict_path_on_mutations(text, index):
    mutated = MUTATIONS[index](text)
    for data in (mutated, mutated.encode("utf-8")):
        assert _outcome(object_from_json, data) == _outcome(_strict, data)


@FUZZ
@given(
    which=st.integers(0, len(CANONICAL) - 1),
    position=st.integers(0, 10_000),
    insert=st.text(alphabet='{}[]":,0123456789abcdefkez \\u.-', max_size=4),
    delete=st.integers(0, 3),
)
def test_canonical_path_matches_strict_path_on_random_edits(which, position, insert, delete):
    text = CANONICAL[which]
    position %= len(text) + 1
    mutated = text[:position] + insert + text[position + delete :]
    assert _outcome(object_from_json, mutated.encode("ascii")) == _outcome(
        _strict, mutated.encode("ascii")
    )


def _claim_reading(text: str):
    raw = text.encode("ascii")
    obj = claim_if_canonical(text, raw)
    if obj is None:
        return None
    return obj, obj.canonical(), obj.payload_bytes, obj.id, list(obj.payload), type(obj.signature)


@pytest.mark.parametrize("index", range(len(MUTATIONS)))
@pytest.mark.parametrize("text", CANONICAL, ids=CANONICAL_IDS)
def test_claim_reading_without_a_parse_matches_the_parse(text, index):
    mutated = MUTATIONS[index](text)
    got = _claim_reading(mutated)
    if got is None:
        return  # not shown there: the parse decides
    value = json.loads(mutated)
    from_parse = object_if_canonical(value, mutated.encode("ascii"))
    assert from_parse is not None
    assert got == (
        from_parse,
        from_parse.canonical(),
        from_parse.payload_bytes,
        from_parse.id,
        list(from_parse.payload),
        Signature,
    )
    assert got[0] == _strict(mutated)


def test_claim_reading_without_a_parse_takes_every_written_claim():
    for claim, text in zip(CLAIMS, CANONICAL, strict=True):
        assert _claim_reading(text) is not None
        assert claim_if_canonical(text, text.encode()) == claim


@FUZZ
@given(
    which=st.integers(0, len(CANONICAL) - 1),
    position=st.integers(0, 10_000),
    insert=st.text(alphabet='{}[]":,0123456789abcdefkez \\u.-\x00\x1f\x7f', max_size=4),
    delete=st.integers(0, 3),
)
def test_claim_reading_without_a_parse_on_random_edits(which, position, insert, delete):
    text = CANONICAL[which]
    position %= len(text) + 1
    mutated = text[:position] + insert + text[position + delete :]
    got = _claim_reading(mutated)
    if got is not None:
        assert got[0] == _strict(mutated)
        assert got[1] == mutated.encode("ascii")


def test_canonical_path_keeps_text_as_canonical_bytes():
    obj = object_from_json(CLAIMS[0].canonical())
    assert obj == CLAIMS[0]
    assert obj.canonical() == CLAIMS[0].canonical()
    assert obj.payload_bytes == CLAIMS[0].payload_bytes
    assert obj.id == CLAIMS[0].id == hashlib.sha256(CLAIMS[0].canonical()).hexdigest()


# --------------------------------------------------------------------------- decode_any shortcut


def _general_decode_any(text, registry):
    """decode_any as it was before the compact shortcut: detection in priority order."""
    enc = _detect(text, registry)
    if enc is not None:
        return enc.decode(text)
    tokens = COMPACT_TOKEN.findall(text)
    if not tokens:
        raise DecodeError("input is not a KEZ object in any known encoding")
    return [compact_decode(token) for token in tokens]


def _decoded(fn, text, registry):
    try:
        return ("ok", [(o, o.canonical(), o.id) for o in fn(text, registry)])
    except KezError as exc:
        return ("error", type(exc).__name__, exc.message)


COMPACTS = [compact_encode(c) for c in CLAIMS]


@pytest.mark.parametrize(
    "make",
    [
        lambda c: c,
        lambda c: c + "\n",
        lambda c: c + " \t\r\n\x1c\x85",
        lambda c: c[:40] + " " + c[40:],
        lambda c: c[:40] + "\n" + c[40:],
        lambda c: c + "=",
        lambda c: c + "==",
        lambda c: c[:-1],
        lambda c: c[:-2],
        lambda c: c[:40] + "+" + c[41:],
        lambda c: c[:40] + "é" + c[41:],
        lambda c: c + " " + c,
        lambda c: c + "\n" + c,
        lambda c: "kez:z1:",
        lambda c: "kez:z1:AAAA",
        lambda c: c.replace("kez:z1:", "kez:z1:kez:z1:"),
        lambda c: c + "```",
    ],
)
@pytest.mark.parametrize("compact", COMPACTS, ids=CANONICAL_IDS)
def test_decode_any_shortcut_matches_detection(compact, make):
    text = make(compact)
    assert _decoded(decode_any, text, REGISTRY) == _decoded(_general_decode_any, text, REGISTRY)


@FUZZ
@given(position=st.integers(0, 10_000), insert=st.text(max_size=3), delete=st.integers(0, 2))
def test_decode_any_shortcut_matches_detection_on_random_edits(position, insert, delete):
    compact = COMPACTS[0]
    position %= len(compact) + 1
    text = compact[:position] + insert + compact[position + delete :]
    assert _decoded(decode_any, text, REGISTRY) == _decoded(_general_decode_any, text, REGISTRY)


@attrs.frozen
class _Grabby:
    """An encoding that claims compact text before the built-in one does."""

    name: str = "grabby"
    priority: int = 5

    def encode(self, obj):  # pragma: no cover - not used
        raise NotImplementedError

    def decode(self, text):
        return []

    def detect(self, text):
        return text.startswith("kez:z1:")


class _GrabbyPlugin:
    @hookimpl
    def kez_register_encodings(self):
        return [_Grabby()]


def test_decode_any_shortcut_respects_a_leading_plugin_encoding():
    registry = Registry(
        plugins=[ed25519, bip340, encodings, _GrabbyPlugin()], entry_points=False, env={}
    )
    assert decode_any(COMPACTS[0], registry) == []  # the plugin's detector came first
    assert decode_any(COMPACTS[0], REGISTRY)[0] == CLAIMS[0]


# --------------------------------------------------------------------------- builders


def test_builders_fill_the_fields_the_classes_have():
    assert [a.name for a in attrs.fields(ClaimCheck)] == [
        "status",
        "reason",
        "checked_at",
        "source",
        "primary",
        "subject",
        "claim_id",
        "created_at",
        "expires_at",
    ]
    assert [a.name for a in attrs.fields(Signature)] == ["alg", "key", "sig"]
    assert [a.name for a in attrs.fields(SignedObject)] == ["kind", "payload", "signature"]
    for cls in (ClaimCheck, Signature, SignedObject):
        assert not hasattr(cls, "__attrs_post_init__") and not hasattr(cls, "__attrs_pre_init__")
        for field in attrs.fields(cls):
            assert field.validator is None and field.converter is None and field.on_setattr is None
    args = (
        Status.VALID,
        "signed by x",
        now(),
        "src",
        "nostr:" + "a" * 64,
        "github:a",
        "f" * 64,
        "c",
        None,
    )
    built, made = claim_check(*args), ClaimCheck(*args)
    assert built == made and hash(built) == hash(made) and repr(built) == repr(made)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.reason = "changed"  # type: ignore[misc]
    assert _trusted_signature("a", "b", "c") == Signature("a", "b", "c")


def test_check_claim_end_to_end_on_both_forms():
    for claim in CLAIMS:
        for form in ("json", "compact"):
            obj = decode_any(encode(claim, form, REGISTRY), REGISTRY)[0]
            result = check_claim(obj, registry=REGISTRY)
            assert type(result) is ClaimCheck and result.ok and result.claim_id == claim.id
        tampered = json.loads(claim.canonical())
        tampered["payload"]["subject"] = "github:mallory"
        obj = object_from_json(json.dumps(tampered, separators=(",", ":"), sort_keys=True))
        assert check_claim(obj, registry=REGISTRY).status is Status.INVALID
