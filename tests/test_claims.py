"""Claims end to end: create, encode, decode, check; every way a claim can be wrong.

Uses a Registry built from the built-in plugins only, so the results do not
depend on what else is installed.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from kez_core.builtins import bip340, ed25519, encodings
from kez_core.claim import check_claim, create_claim, read_claim
from kez_core.encoding import decode_any, encode
from kez_core.errors import DecodeError, KezError, SchemaError, SignatureError, UnknownNameError
from kez_core.keys import Signer
from kez_core.registry import Registry
from kez_core.signed import Signature, SignedObject, sign, verify_signature
from kez_core.status import Status
from kez_core.subjects import normalize_subject
from kez_core.timefmt import format_time, now

ALGS = ["ed25519", "nostr"]
ENCODINGS = ["json", "compact", "markdown", "dns"]


@pytest.fixture(scope="module")
def registry():
    # the ap and bluesky plugins declare the aliases `mastodon:`, `activitypub:` and `bsky:`
    from kez_channel_activitypub import plugin as ap
    from kez_channel_bluesky import plugin as bluesky

    return Registry(plugins=[ed25519, bip340, encodings, ap, bluesky], entry_points=False, env={})


@pytest.fixture(scope="module", params=ALGS)
def signer(request, registry):
    return Signer.generate(request.param, registry)


@pytest.fixture(scope="module")
def other_signer(registry):
    return Signer.generate("ed25519", registry)


@pytest.fixture
def claim(signer, registry):
    return create_claim(signer, "github:alice", expires_in=timedelta(days=30), registry=registry)


def rebuild(obj: SignedObject, *, payload=None, **signature) -> SignedObject:
    """A copy of `obj` with payload fields or signature fields replaced (not re-signed)."""
    new_payload = {**obj.payload, **(payload or {})}
    sig = obj.signature
    return SignedObject(obj.kind, new_payload, Signature(**{**sig.to_dict(), **signature}))


def status_of(obj, registry, **kwargs):
    return check_claim(obj, registry=registry, **kwargs)


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("encoding_name", ENCODINGS)
def test_round_trip_every_alg_and_encoding(registry, alg, encoding_name):
    signer = Signer.generate(alg, registry)
    claim = create_claim(signer, "dns:Example.org", registry=registry)
    text = encode(claim, encoding_name, registry)
    decoded = decode_any(text, registry)
    assert decoded == [claim]
    result = check_claim(decoded[0], registry=registry)
    assert result.status is Status.VALID, result.reason
    assert result.primary == signer.key_id
    assert result.subject == "dns:example.org"
    assert result.claim_id == claim.id


def test_claim_fields(claim, signer, registry):
    parsed = read_claim(claim, registry)
    assert parsed.primary == signer.key_id
    assert parsed.subject == "github:alice"
    assert parsed.expires_at - parsed.created_at == timedelta(days=30)
    assert len(parsed.nonce) == 32
    assert claim.payload["type"] == "kez.claim" and claim.payload["version"] == 1
    assert claim.signature.alg == signer.alg.signature_alg
    assert claim.signature.key == signer.key_id
    assert len(claim.signature.sig) == 128


def test_two_claims_never_identical(signer, registry):
    when = now()
    first = create_claim(signer, "github:alice", created_at=when, registry=registry)
    second = create_claim(signer, "github:alice", created_at=when, registry=registry)
    assert first.payload["nonce"] != second.payload["nonce"]
    assert first.id != second.id


def test_ids_stable_across_encodings(claim, registry):
    ids = set()
    for name in ENCODINGS:
        [decoded] = decode_any(encode(claim, name, registry), registry)
        ids.add(decoded.id)
    assert ids == {claim.id}


def test_any_json_spelling_has_the_same_id(claim, registry):
    pretty = json.dumps(claim.to_dict(), indent=3, sort_keys=False, ensure_ascii=True)
    reordered = json.dumps(dict(reversed(list(claim.to_dict().items()))))
    for text in (pretty, reordered, "\n  " + pretty + "\n"):
        [decoded] = decode_any(text, registry)
        assert decoded.id == claim.id
        assert check_claim(decoded, registry=registry).status is Status.VALID


def test_id_is_sha256_of_jcs(claim):
    import hashlib

    assert claim.id == hashlib.sha256(claim.canonical()).hexdigest()
    assert encode(
        claim, "json", Registry(plugins=[ed25519, bip340, encodings], entry_points=False, env={})
    ) == (claim.canonical().decode())


def test_unknown_payload_fields_are_signed_and_kept(signer, registry):
    payload = {
        "primary": signer.key_id,
        "subject": "github:alice",
        "created_at": format_time(now()),
        "nonce": "00" * 16,
        "x-future": {"nested": ["é", 1.5, None]},
    }
    obj = sign("claim", payload, signer)
    for name in ENCODINGS:
        [decoded] = decode_any(encode(obj, name, registry), registry)
        assert decoded.payload["x-future"] == {"nested": ["é", 1.5, None]}
        assert check_claim(decoded, registry=registry).status is Status.VALID
    changed = rebuild(obj, payload={"x-future": {"nested": ["e", 1.5, None]}})
    assert check_claim(changed, registry=registry).status is Status.INVALID


# ------------------------------------------------------------------ tampering


@pytest.mark.parametrize(
    "field, value",
    [
        ("subject", "github:mallory"),
        ("created_at", "2020-01-01T00:00:00Z"),
        ("expires_at", "2099-01-01T00:00:00Z"),
        ("nonce", "11" * 16),
    ],
)
def test_tampered_payload_field_is_invalid(claim, registry, field, value):
    tampered = rebuild(claim, payload={field: value})
    result = status_of(tampered, registry)
    assert result.status is Status.INVALID
    assert "signature does not verify" in result.reason
    with pytest.raises(SignatureError):
        verify_signature(tampered, registry)


def test_removed_expiry_is_invalid(claim, registry):
    payload = dict(claim.payload)
    del payload["expires_at"]
    tampered = SignedObject(claim.kind, payload, claim.signature)
    assert status_of(tampered, registry).status is Status.INVALID


def test_swapped_signature_key_is_invalid(claim, other_signer, registry):
    tampered = rebuild(claim, key=other_signer.key_id, alg=other_signer.alg.signature_alg)
    result = status_of(tampered, registry)
    assert result.status is Status.INVALID
    assert "payload.primary" in result.reason


def test_swapped_key_and_primary_is_invalid(claim, other_signer, registry):
    tampered = rebuild(
        claim,
        payload={"primary": other_signer.key_id},
        key=other_signer.key_id,
        alg=other_signer.alg.signature_alg,
    )
    result = status_of(tampered, registry)
    assert result.status is Status.INVALID
    assert "does not verify" in result.reason


def test_signature_by_a_key_other_than_primary(signer, other_signer, registry):
    payload = {
        "primary": other_signer.key_id,
        "subject": "github:alice",
        "created_at": format_time(now()),
        "nonce": "ab" * 16,
    }
    obj = sign("claim", payload, signer)  # signed by `signer`, claims to be `other_signer`
    result = status_of(obj, registry)
    assert result.status is Status.INVALID
    assert "payload.primary" in result.reason


def test_signature_alg_mismatching_key(claim, registry):
    wrong = (
        "bip340-sha256-jcs" if claim.signature.alg == "ed25519-sha512-jcs" else "ed25519-sha512-jcs"
    )
    assert status_of(rebuild(claim, alg=wrong), registry).status is Status.INVALID
    assert status_of(rebuild(claim, alg="rsa-sha1"), registry).status is Status.INVALID


def test_primary_not_in_normal_form_is_invalid(claim, registry):
    upper = claim.payload["primary"].upper()
    result = status_of(rebuild(claim, payload={"primary": upper}), registry)
    assert result.status is Status.INVALID
    with pytest.raises(KezError):
        read_claim(rebuild(claim, payload={"primary": upper}), registry)


@pytest.mark.parametrize(
    "change",
    [
        {"subject": "GitHub:Alice"},  # not normal form
        {"subject": 5},
        {"nonce": "xyz"},
        {"nonce": "AB" * 16},
        {"created_at": "2026-01-31 12:00:00"},
        {"created_at": "2026-02-30T12:00:00Z"},
        {"created_at": "2026-01-31T12:00:00.5Z"},
        {"created_at": "2026-01-31T12:00:00+00:00"},
        {"created_at": "2026-01-31T12:00:00Z\n"},  # a second spelling of the same instant
        {"created_at": "\uff12\uff10\uff12\uff16-01-31T12:00:00Z"},  # fullwidth digits
        {"nonce": "ab" * 16 + "\n"},
        {"expires_at": "2000-01-01T00:00:00Z"},  # before created_at
        {"primary": None},
    ],
)
def test_malformed_fields_are_invalid_not_errors(claim, registry, change):
    obj = rebuild(claim, payload=change)
    with pytest.raises(DecodeError):
        read_claim(obj, registry)
    result = status_of(obj, registry)
    assert result.status is Status.INVALID


@pytest.mark.parametrize("field", ["primary", "subject", "created_at", "nonce"])
def test_missing_field_is_invalid(claim, registry, field):
    payload = dict(claim.payload)
    del payload[field]
    obj = SignedObject(claim.kind, payload, claim.signature)
    with pytest.raises(SchemaError):
        read_claim(obj, registry)
    assert status_of(obj, registry).status is Status.INVALID


def test_not_a_claim_kind(signer, registry):
    obj = sign("note", {"text": "hi"}, signer)
    with pytest.raises(SchemaError):
        read_claim(obj, registry)
    assert status_of(obj, registry).status is Status.INVALID


# ------------------------------------------------------------- envelope schema


def _json_variant(claim, mutate) -> str:
    data = json.loads(claim.canonical())
    mutate(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d.update(extra=1), id="unknown-top-level-field"),
        pytest.param(lambda d: d["signature"].update(comment="x"), id="unknown-signature-field"),
        pytest.param(lambda d: d["payload"].update(type="kez.message"), id="wrong-type"),
        pytest.param(lambda d: d["payload"].update(type="claim"), id="type-without-prefix"),
        pytest.param(lambda d: d["payload"].pop("type"), id="no-type"),
        pytest.param(lambda d: d["payload"].update(version=2), id="version-2"),
        pytest.param(lambda d: d["payload"].update(version="1"), id="version-string"),
        pytest.param(lambda d: d["payload"].update(version=1.0), id="version-float"),
        pytest.param(lambda d: d["payload"].update(version=True), id="version-bool"),
        pytest.param(lambda d: d.update(kez="Claim"), id="kind-uppercase"),
        pytest.param(lambda d: d.update(kez="claim\n"), id="kind-newline"),
        pytest.param(lambda d: d.pop("signature"), id="no-signature"),
        pytest.param(lambda d: d.update(payload=[]), id="payload-not-object"),
        pytest.param(lambda d: d["signature"].update(sig=d["signature"]["sig"][:-1]), id="sig-127"),
        pytest.param(
            lambda d: d["signature"].update(sig=d["signature"]["sig"] + "0"), id="sig-129"
        ),
        pytest.param(
            lambda d: d["signature"].update(sig=d["signature"]["sig"].upper()), id="sig-upper"
        ),
        pytest.param(
            lambda d: d["signature"].update(sig=d["signature"]["sig"] + "\n"), id="sig-newline"
        ),
        pytest.param(
            lambda d: d["signature"].update(sig=" " + d["signature"]["sig"][1:]), id="sig-space"
        ),
        pytest.param(lambda d: d["signature"].update(sig="zz" * 64), id="sig-not-hex"),
        pytest.param(lambda d: d["signature"].update(key=5), id="key-not-string"),
    ],
)
def test_envelope_errors_are_schema_errors(claim, registry, mutate):
    text = _json_variant(claim, mutate)
    with pytest.raises(SchemaError):
        decode_any(text, registry)
    with pytest.raises(SchemaError):
        SignedObject.from_dict(json.loads(text))


def test_signature_text_is_not_malleable(claim, registry):
    """One signature, one spelling: a variant sig text must not give a second valid object."""
    for variant in (
        claim.signature.sig + "\n",
        claim.signature.sig.upper(),
        " " + claim.signature.sig,
    ):
        obj = rebuild(claim, sig=variant)
        assert obj.id != claim.id
        assert status_of(obj, registry).status is Status.INVALID


# ----------------------------------------------------------------------- time


def test_expired_claim(signer, registry):
    created = now() - timedelta(days=10)
    claim = create_claim(
        signer, "github:alice", created_at=created, expires_in=timedelta(days=1), registry=registry
    )
    result = check_claim(claim, registry=registry)
    assert result.status is Status.EXPIRED
    assert claim.payload["expires_at"] in result.reason
    # checked at a time before expiry it was valid
    earlier = check_claim(claim, registry=registry, at=created + timedelta(hours=1))
    assert earlier.status is Status.VALID
    # exactly at expires_at it is expired
    at_expiry = check_claim(claim, registry=registry, at=created + timedelta(days=1))
    assert at_expiry.status is Status.EXPIRED


def test_created_in_the_future_is_invalid(signer, registry):
    claim = create_claim(
        signer, "github:alice", created_at=now() + timedelta(hours=2), registry=registry
    )
    result = check_claim(claim, registry=registry)
    assert result.status is Status.INVALID
    assert "future" in result.reason


def test_small_clock_skew_is_tolerated(signer, registry):
    claim = create_claim(
        signer, "github:alice", created_at=now() + timedelta(minutes=2), registry=registry
    )
    assert check_claim(claim, registry=registry).status is Status.VALID


def test_check_result_carries_fields(claim, registry):
    result = check_claim(claim, registry=registry, source="https://example.org/x")
    assert result.ok
    assert result.source == "https://example.org/x"
    assert result.created_at == claim.payload["created_at"]
    assert result.expires_at == claim.payload["expires_at"]


# ----------------------------------------------------------------- subjects

NPUB = "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg"
NPUB_HEX = "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e"


@pytest.mark.parametrize(
    "raw, normal",
    [
        ("github:alice", "github:alice"),
        ("GitHub:Alice", "github:alice"),
        ("github:@Alice-Smith", "github:alice-smith"),
        ("  github:alice  ", "github:alice"),
        ("dns:Example.ORG", "dns:example.org"),
        ("dns:example.org.", "dns:example.org"),
        ("dns:bücher.example", "dns:xn--bcher-kva.example"),
        (f"nostr:{NPUB}", f"nostr:{NPUB_HEX}"),
        (f"nostr:{NPUB_HEX.upper()}", f"nostr:{NPUB_HEX}"),
        (f"NOSTR:{NPUB_HEX}", f"nostr:{NPUB_HEX}"),
        ("bluesky:Alice.BSKY.social", "bluesky:alice.bsky.social"),
        ("bluesky:@alice.bsky.social", "bluesky:alice.bsky.social"),
        ("bsky:alice.bsky.social", "bluesky:alice.bsky.social"),
        ("bluesky:did:plc:abcdefghijklmnopqrstuvwx", "bluesky:did:plc:abcdefghijklmnopqrstuvwx"),
        ("ap:alice@mastodon.social", "ap:alice@mastodon.social"),
        ("ap:@Alice@Mastodon.Social", "ap:alice@mastodon.social"),
        ("mastodon:alice@mastodon.social", "ap:alice@mastodon.social"),
        ("Mastodon:@alice@mastodon.social", "ap:alice@mastodon.social"),
        ("activitypub:alice@example.org", "ap:alice@example.org"),
    ],
)
def test_subject_normalisation(registry, raw, normal):
    assert normalize_subject(raw, registry) == normal
    assert normalize_subject(normal, registry) == normal  # idempotent


@pytest.mark.parametrize(
    "raw",
    [
        "github",
        "github:",
        ":alice",
        "git hub:alice",
        "github:ali ce",
        "github:-alice",
        "github:alice-",
        "github:a--b",
        "github:alice_1",
        "github:" + "a" * 40,
        "dns:localhost",
        "dns:-bad.example.org",
        "dns:exa_mple.org",
        "dns:" + "a" * 64 + ".org",
        "nostr:" + "0" * 64,  # not a curve point
        "nostr:npub1",
        "nostr:abc",
        "bluesky:did:foo:bar",
        "bluesky:nodot",
        "ap:alice",
        "ap:@mastodon.social",
        "ap:alice@localhost",
        "mastodon:al ice@mastodon.social",
        "github\n:alice",
        "1github:alice",
        "github:alice\x00",
        5,
        None,
    ],
)
def test_subject_rejections(registry, raw):
    with pytest.raises(DecodeError):
        normalize_subject(raw, registry)


@pytest.mark.parametrize(
    "raw", ["futurechannel:SomeHandle", "web:Example.ORG", "mastodon:a@b.example"]
)
def test_a_prefix_no_plugin_provides_is_refused(raw):
    """Kept as written, `web:Example.ORG` would be one subject without the web plugin and another with it."""
    bare = Registry(plugins=[ed25519, bip340, encodings], entry_points=False, env={})
    with pytest.raises(UnknownNameError) as info:
        normalize_subject(raw, bare)
    assert "kez plugins" in info.value.hint and raw.split(":")[0] in info.value.message
    # the five channels the design fixes keep their normal forms without any plugin
    assert normalize_subject("GitHub:Alice", bare) == "github:alice"


def test_create_claim_normalises_subject(signer, registry):
    claim = create_claim(signer, "Mastodon:@Alice@Mastodon.Social", registry=registry)
    assert claim.payload["subject"] == "ap:alice@mastodon.social"
    claim = create_claim(signer, f"nostr:{NPUB}", registry=registry)
    assert claim.payload["subject"] == f"nostr:{NPUB_HEX}"


def test_create_claim_refuses_bad_subject(signer, registry):
    with pytest.raises(DecodeError):
        create_claim(signer, "github:", registry=registry)


def test_namespaced_type_round_trips_and_wrong_kind_is_refused():
    from kez_core.errors import SchemaError
    from kez_core.keys import Signer
    from kez_core.signed import SignedObject, sign, verify_signature

    signer = Signer.generate("ed25519")
    obj = sign(
        "handle_registration",
        {"handle": "alice", "primary": signer.key_id},
        signer,
        namespace="chat",
    )
    assert obj.payload["type"] == "kez.chat.handle_registration"
    again = SignedObject.from_dict(obj.to_dict())
    verify_signature(again)
    bad = obj.to_dict()
    bad["payload"] = dict(bad["payload"], type="kez.chat.claim")
    with pytest.raises(SchemaError):
        SignedObject.from_dict(bad)
    bad["payload"]["type"] = "kez..handle_registration"
    with pytest.raises(SchemaError):
        SignedObject.from_dict(bad)
