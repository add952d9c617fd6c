"""Property tests: every decoder answers any input with a value or a KezError, nothing else.

DESIGN.md §8: no tracebacks for user errors. A `ValueError`, `UnicodeError`,
`RecursionError` or library exception escaping any of these functions is a
bug. Settings stay modest (≤200 examples per property) so the file runs in
well under 30 s.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from kez_core.builtins import bip340, ed25519, encodings
from kez_core.builtins.encodings import CompactEncoding, DnsEncoding, JsonEncoding, MarkdownEncoding
from kez_core.claim import check_claim, create_claim
from kez_core.codec import compact_decode, parse_json
from kez_core.encoding import decode_any, encode
from kez_core.errors import DecodeError, KezError, PassphraseError
from kez_core.keys import Signer, parse_key_id
from kez_core.keystore import signer_from_text
from kez_core.registry import Registry
from kez_core.signed import SignedObject, sign
from kez_core.status import ClaimCheck, Status
from kez_core.subjects import normalize_subject
from kez_core.timefmt import format_time, now, parse_duration, parse_time

from kez_core import nip19, nip49

REGISTRY = Registry(plugins=[ed25519, bip340, encodings], entry_points=False, env={})
ENCODINGS = {
    "json": JsonEncoding(),
    "compact": CompactEncoding(),
    "markdown": MarkdownEncoding(),
    "dns": DnsEncoding(),
}

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# Text of every kind, lone surrogates included (they reach us through JSON "\ud800" escapes).
any_text = st.text(st.characters(exclude_categories=()), max_size=400)
PREFIXES = [
    "",
    "{",
    "[",
    '"',
    "kez:z1:",
    "kez:z1:KLUv_",
    "```kez\n",
    "~~~kez\n",
    "_kez.example.org. 3600 IN TXT ",
    "npub1",
    "nsec1",
    "ncryptsec1",
    "note1",
    "nprofile1",
    "ed25519:",
    "nostr:",
    "nostr:npub1",
    "github:",
    "dns:",
    "ap:@",
    "bluesky:did:plc:",
    "mastodon:",
    "-----BEGIN PRIVATE KEY-----\n",
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n",
    "2026-01-31T",
    "90",
    "\\",
    '"\\',
]
near_alphabet = st.sampled_from(
    list('0123456789abcdefABCDEF:-_@."\\ \n\t{}[],`~=qpzry9x8gf2tvdw0s3jn54khce6mua7l')
    + ["\u00e9", "\u00b2", "\uff12", "\u0663", "\ud800", "\x00", "\u2028"]
)
near_text = st.builds(
    lambda p, b: p + b, st.sampled_from(PREFIXES), st.text(near_alphabet, max_size=200)
)
texts = st.one_of(any_text, near_text)


def same_object(obj, original) -> bool:
    try:
        return obj.canonical() == original.canonical()
    except KezError:  # not canonicalizable (lone surrogate, huge number): not the signed object
        return False


def only_kez_errors(function, *args, **kwargs):
    """Call `function`; a KezError is an acceptable answer, any other exception fails the test."""
    try:
        return function(*args, **kwargs)
    except KezError:
        return None


# ------------------------------------------------------------- raw input


@FUZZ
@given(texts)
def test_decode_any_text(text):
    result = only_kez_errors(decode_any, text, REGISTRY)
    assert result is None or all(isinstance(o, SignedObject) for o in result)


@FUZZ
@given(st.binary(max_size=400))
def test_decode_any_bytes(data):
    only_kez_errors(decode_any, data, REGISTRY)


@FUZZ
@given(st.sampled_from(sorted(ENCODINGS)), texts)
def test_each_encoding_decode_and_detect(name, text):
    encoding = ENCODINGS[name]
    assert encoding.detect(text) in (True, False)
    try:
        objects = encoding.decode(text)
    except DecodeError:
        return
    assert all(isinstance(o, SignedObject) for o in objects)


@FUZZ
@given(texts)
def test_compact_decode(text):
    only_kez_errors(compact_decode, text)


@FUZZ
@given(st.one_of(texts, st.binary(max_size=300)))
def test_parse_json(data):
    only_kez_errors(parse_json, data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=20,
)


@FUZZ
@given(json_values)
def test_signed_object_from_any_json_value(value):
    obj = only_kez_errors(SignedObject.from_dict, value)
    if obj is not None:
        assert isinstance(check_claim(obj, registry=REGISTRY), ClaimCheck)


@FUZZ
@given(texts)
def test_nip19_decode(text):
    only_kez_errors(nip19.decode, text)


@FUZZ
@given(
    st.sampled_from(
        ["npub", "nsec", "note", "nprofile", "nevent", "naddr", "ncryptsec", "nrelay", "x"]
    ),
    st.binary(max_size=120),
)
def test_nip19_decode_valid_bech32(hrp, payload):
    """Checksums right, contents arbitrary: the TLV and length checks must hold."""
    text = nip19.encode_bytes(hrp, payload)
    only_kez_errors(nip19.decode, text)
    only_kez_errors(nip19.decode, text.upper())


@FUZZ
@given(texts, any_text)
def test_nip49_decrypt_text(text, password):
    only_kez_errors(nip49.decrypt, text, password)


@settings(max_examples=60, deadline=None, database=None)
@given(
    version=st.sampled_from([0, 1, 2, 3, 255]),
    log_n=st.sampled_from([0, 1, 2, 3, 21, 64, 255]),  # scrypt cost stays tiny or is refused
    body=st.binary(min_size=0, max_size=100),
    password=any_text,
)
def test_nip49_decrypt_structured(version, log_n, body, password):
    text = nip19.encode_bytes("ncryptsec", bytes([version, log_n]) + body)
    only_kez_errors(nip49.decrypt, text, password)


@FUZZ
@given(texts)
def test_parse_key_id(text):
    key = only_kez_errors(parse_key_id, text, REGISTRY)
    if key is not None:
        assert parse_key_id(str(key), REGISTRY) == key


@FUZZ
@given(texts)
def test_normalize_subject(text):
    normal = only_kez_errors(normalize_subject, text, REGISTRY)
    if normal is not None:
        assert normalize_subject(normal, REGISTRY) == normal


@FUZZ
@given(texts)
def test_parse_time(text):
    when = only_kez_errors(parse_time, text)
    if when is not None:
        assert format_time(when) == text  # only one spelling is accepted


@FUZZ
@given(
    st.one_of(
        texts,
        st.builds(
            lambda n, u: f"{n}{u}",
            st.integers(min_value=-10, max_value=10**30),
            st.sampled_from("smhdwyx"),
        ),
    )
)
def test_parse_duration(text):
    result = only_kez_errors(parse_duration, text)
    assert result is None or result > timedelta(0)


@pytest.mark.parametrize(
    "function, text",
    [
        (parse_duration, "1" * 5000 + "d"),  # int() refuses >4300 digits with ValueError
        (parse_duration, "\u0663d"),  # an Arabic-Indic digit
        (parse_time, "\uff12\uff10\uff12\uff16-01-31T12:00:00Z"),  # fullwidth digits
        (parse_time, "2026-01-31T12:00:00Z\n"),
        (
            lambda t: DnsEncoding().decode(t),
            '"\\\u00b2\u00b2\u00b2"',
        ),  # superscript digits are not \DDD
        (lambda t: DnsEncoding().decode(t), '"\ud800"'),  # a lone surrogate has no UTF-8 length
        (lambda t: decode_any(t, REGISTRY), '"\ud800"'),
    ],
)
def test_found_by_fuzzing(function, text):
    """Inputs that once escaped as ValueError/UnicodeError or were wrongly accepted."""
    with pytest.raises(DecodeError):
        function(text)


@FUZZ
@given(
    texts,
    st.sampled_from([None, "ed25519", "nostr", "rsa"]),
    st.one_of(st.none(), st.binary(max_size=20)),
)
def test_signer_from_text(text, alg, passphrase):
    signer = only_kez_errors(
        signer_from_text, text, alg=alg, passphrase=lambda: passphrase, registry=REGISTRY
    )
    assert signer is None or isinstance(signer, Signer)


@pytest.mark.parametrize("password", [b"\xff\xfe", b"caf\xe9"])
def test_signer_from_ncryptsec_with_non_utf8_password(password):
    text = nip49.encrypt(bytes(range(1, 33)), "pw", log_n=1)
    with pytest.raises(PassphraseError):
        signer_from_text(text, alg=None, passphrase=lambda: password, registry=REGISTRY)


# ----------------------------------------------------------- mutations


def _claims():
    out = []
    when = now()
    for alg in ("ed25519", "nostr"):
        signer = Signer.generate(alg, REGISTRY)
        out.append(
            create_claim(
                signer,
                "dns:example.org",
                created_at=when,
                expires_in=timedelta(days=9),
                registry=REGISTRY,
            )
        )
    return out


CLAIMS = _claims()
ENCODED = [(obj, name, encode(obj, name, REGISTRY)) for obj in CLAIMS for name in ENCODINGS]


@st.composite
def mutated(draw):
    obj, name, text = draw(st.sampled_from(ENCODED))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "swap"]))
        if action == "flip" and position < len(text):
            replacement = draw(st.one_of(near_alphabet, st.characters()))
            text = text[:position] + replacement + text[position + 1 :]
        elif action == "insert":
            text = (
                text[:position]
                + draw(st.text(near_alphabet, min_size=1, max_size=4))
                + text[position:]
            )
        elif action == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 8)) :]
        elif action == "swap" and position + 1 < len(text):
            text = text[:position] + text[position + 1] + text[position] + text[position + 2 :]
    return obj, name, text


@FUZZ
@given(mutated())
def test_mutated_encodings(case):
    original, name, text = case
    for decoder in (lambda t: decode_any(t, REGISTRY), ENCODINGS[name].decode):
        try:
            objects = decoder(text)
        except DecodeError:
            continue
        assert isinstance(objects, list)
        for obj in objects:
            assert isinstance(obj, SignedObject)
            result = check_claim(obj, registry=REGISTRY)
            assert isinstance(result, ClaimCheck)
            if not same_object(obj, original):
                assert result.status is not Status.VALID, "a changed claim must not verify"


@FUZZ
@given(
    st.sampled_from(CLAIMS),
    st.lists(
        st.tuples(st.sampled_from(["payload", "signature", "top"]), any_text, json_values),
        min_size=1,
        max_size=3,
    ),
)
def test_mutated_json_fields(original, edits):
    """Replace or add fields with arbitrary JSON values; the verdict is an answer, never a crash."""
    data = json.loads(original.canonical())
    for where, key, value in edits:
        target = data if where == "top" else data[where]
        assume(isinstance(target, dict))
        target[key] = value
    try:
        [obj] = decode_any(json.dumps(data), REGISTRY)
    except (DecodeError, ValueError) as exc:
        # json.dumps itself may refuse (NaN is allowed by dumps, so only check ours)
        assert isinstance(exc, DecodeError)
        return
    result = check_claim(obj, registry=REGISTRY)
    if not same_object(obj, original):
        assert result.status is not Status.VALID


@FUZZ
@given(
    st.sampled_from(CLAIMS),
    st.sampled_from(["primary", "subject", "created_at", "expires_at", "nonce"]),
    json_values,
)
def test_resigned_claims_with_odd_fields(original, field, value):
    """A correctly signed claim with a strange field value: check_claim answers, never raises."""
    signer_alg = REGISTRY.key_algorithm(original.payload["primary"].split(":")[0])
    signer = Signer(signer_alg, signer_alg.generate_secret())
    payload = {k: v for k, v in original.payload.items() if k not in ("type", "version")}
    payload["primary"] = signer.key_id
    payload[field] = value
    try:
        obj = sign("claim", payload, signer)
    except KezError:
        return  # not canonicalizable (NaN, lone surrogate): cannot be signed at all
    result = check_claim(obj, registry=REGISTRY)
    assert isinstance(result, ClaimCheck)
    for name, encoding in ENCODINGS.items():
        text = only_kez_errors(encoding.encode, obj)
        if text is not None:
            assert encoding.decode(text) == [obj], name
