"""Property tests: envelope, padding and message decoders answer garbage with a KezError only.

An envelope arrives from anyone on a public relay, so every decoder on the
receiving path is fed random text, random bytes, and valid envelopes with
random damage (DESIGN.md §8: typed errors, never a traceback).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kez_core.errors import KezError
from kez_core.keys import Signer
from kez_core.messaging import (
    BUCKETS,
    PREFIX,
    EnvelopeError,
    InboxSecret,
    create_message,
    message_from_json,
    open_envelope,
    pad,
    seal,
    seal_message,
    text_body,
    unpad,
)
from kez_core.messaging.envelope import envelope_bytes

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ALICE, BOB = Signer.generate(), Signer.generate()
INBOX = InboxSecret.generate()
OBJ = create_message(
    ALICE,
    sender_identity=ALICE.key_id,
    recipient=BOB.key_id,
    inbox_key=INBOX.key_id,
    body=text_body("hello"),
    created_at=T0,
)
ENVELOPE = seal_message(OBJ)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _open(envelope):
    return open_envelope(envelope, [INBOX], identity=BOB.key_id, replay=None, at=T0)


@SETTINGS
@given(
    st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda t: PREFIX + t),
    )
)
def test_garbage_envelopes_are_envelope_errors(data):
    try:
        _open(data)
    except EnvelopeError:
        pass


@SETTINGS
@given(st.integers(min_value=len(PREFIX), max_value=len(ENVELOPE) - 1), st.sampled_from("AQgw_-z9"))
def test_a_damaged_envelope_never_opens(position, char):
    damaged = ENVELOPE[:position] + char + ENVELOPE[position + 1 :]
    if damaged == ENVELOPE:
        return
    try:
        _open(damaged)
    except EnvelopeError:
        return
    raise AssertionError("a damaged envelope opened")


@SETTINGS
@given(st.integers(min_value=0, max_value=len(ENVELOPE) - 1))
def test_a_truncated_envelope_never_opens(cut):
    try:
        _open(ENVELOPE[:cut])
    except EnvelopeError:
        return
    raise AssertionError("a truncated envelope opened")


@SETTINGS
@given(st.binary(max_size=3000))
def test_padding_round_trips_and_lands_on_a_bucket(content):
    padded = pad(content)
    assert len(padded) in BUCKETS
    assert unpad(padded) == content


@SETTINGS
@given(st.one_of(st.binary(max_size=2100), st.sampled_from(BUCKETS).map(bytes)))
def test_garbage_plaintexts_are_envelope_errors(data):
    try:
        unpad(data)
    except EnvelopeError:
        pass


@SETTINGS
@given(st.binary(max_size=1500))
def test_garbage_sealed_to_us_is_a_typed_error(content):
    """Any bytes a stranger seals to our inbox key: a KezError (bad JSON, bad shape, bad signature)."""
    try:
        _open(seal(content, INBOX.key_id))
    except KezError:
        return
    raise AssertionError("garbage was accepted as a message")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "sender",
                "sender_identity",
                "recipient",
                "inbox_key",
                "created_at",
                "nonce",
                "body",
                "type",
                "version",
            ]
        ),
        JSON_VALUES,
        max_size=5,
    )
)
def test_payload_mutations_are_typed_errors(changes):
    data = OBJ.to_dict()
    data["payload"].update(changes)
    try:
        message_from_json(json.dumps(data).encode())
    except KezError:
        pass


def test_a_valid_envelope_still_opens():
    assert _open(ENVELOPE).id == OBJ.id
    assert len(envelope_bytes(ENVELOPE)) == 32 + BUCKETS[0] + 16


# ------------------------------------- check_envelope_text == envelope_bytes


def _verdict(fn, text):
    from kez_core.messaging.errors import EnvelopeError

    try:
        fn(text)
    except EnvelopeError as exc:
        return exc.message
    return None


def _b64_texts():
    import base64

    from kez_core.messaging.envelope import _SEALED_SIZES

    sizes = sorted(_SEALED_SIZES)[:3]
    good = st.builds(
        lambda n, seed: (
            "kez:e1:" + base64.urlsafe_b64encode(bytes([seed]) * n).rstrip(b"=").decode()
        ),
        st.sampled_from(
            sizes + [s - 1 for s in sizes] + [s + 1 for s in sizes] + [s + 2 for s in sizes]
        ),
        st.integers(0, 255),
    )
    # mutations: a last character with stray bits, a character outside the alphabet, white space
    mutated = st.builds(
        lambda text, ch, where: text[:where] + ch + text[where + 1 :],
        good,
        st.sampled_from(list("AB_-=+/ .\n\x00é") + ["Q", "g", "w", "R"]),
        st.integers(0, 2000),
    )
    return st.one_of(
        good,
        mutated,
        good.map(lambda t: t + "A"),
        good.map(lambda t: t[:-1]),
        good.map(lambda t: " " + t),
        good.map(lambda t: t + "\n"),
        st.text(max_size=40),
        st.text(max_size=40).map(lambda t: "kez:e1:" + t),
    )


@given(_b64_texts())
@settings(max_examples=400)
def test_check_envelope_text_decides_as_envelope_bytes(text):
    """The inbox's cheap check takes what `envelope_bytes` takes (on text without surrounding
    white space, which the inbox refuses too), with the same message."""
    from kez_core.messaging.envelope import check_envelope_text, envelope_bytes

    expected = _verdict(envelope_bytes, text)
    if expected is None and text != text.strip():
        expected = "an envelope has no surrounding white space"  # what the inbox said before
    assert _verdict(check_envelope_text, text) == expected
