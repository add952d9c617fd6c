"""`envelope_bytes` reads bytes in place (no copies of a 700 KB text); its verdict on every
input must stay exactly what the earlier text-based reader said: a differential test against
that reader, kept here as the reference."""

from __future__ import annotations

import binascii

import pybase64
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kez_core.messaging.envelope import (
    _SEALED_SIZES,
    MAX_ATTACHMENT_ENVELOPE_TEXT,
    PREFIX,
    EnvelopeError,
    envelope_bytes,
)
from kez_core.messaging.padding import BUCKETS

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def reference(envelope: object) -> bytes:
    """The reader before it worked on bytes (kez_core 0.1, 2026-12-06)."""
    if isinstance(envelope, bytes | bytearray):
        try:
            envelope = bytes(envelope).decode("ascii")
        except UnicodeDecodeError:
            raise EnvelopeError("an envelope is ASCII text starting with kez:e1:") from None
    if not isinstance(envelope, str):
        raise EnvelopeError("an envelope is ASCII text starting with kez:e1:")
    envelope = envelope.strip()
    if not envelope.startswith(PREFIX):
        raise EnvelopeError(f"an envelope starts with {PREFIX!r}")
    if len(envelope) > MAX_ATTACHMENT_ENVELOPE_TEXT:
        raise EnvelopeError(
            f"envelope is longer than the largest one ({MAX_ATTACHMENT_ENVELOPE_TEXT} characters)"
        )
    body = envelope[len(PREFIX) :]
    if "+" in body or "/" in body or "=" in body or len(body) % 4 == 1:
        raise EnvelopeError("envelope body is not base64url without padding")
    try:
        raw = pybase64.b64decode(body + "=" * (-len(body) % 4), altchars="-_", validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise EnvelopeError("envelope body is not base64url without padding") from exc
    unused = {2: 0x0F, 3: 0x03}.get(len(body) % 4)
    if unused is not None and _ALPHABET.index(body[-1]) & unused:
        raise EnvelopeError(
            "envelope body is not canonical base64url (stray bits in the last character)"
        )
    if len(raw) not in _SEALED_SIZES:
        raise EnvelopeError(f"envelope of {len(raw)} bytes does not hold a padded message")
    return raw


def verdict(read, envelope: object) -> tuple[str, object]:
    try:
        return "ok", read(envelope)
    except EnvelopeError as exc:
        return "refused", exc.message


def text_of(raw: bytes) -> str:
    return PREFIX + pybase64.b64encode(raw, altchars=b"-_").decode().rstrip("=")


sizes = st.sampled_from(sorted(_SEALED_SIZES)[:3])
noise = st.sampled_from(
    ["", " ", "\n", "\t", "\x1c", "\x1f", "\u3000", "\u00a0", "=", "==", "+", "/", "A", "é", "\x00"]
)


@st.composite
def envelopes(draw: st.DrawFn) -> object:
    raw = draw(st.randoms(use_true_random=False)).randbytes(draw(sizes))
    text = text_of(raw)
    cut = draw(st.integers(0, len(text)))
    how = draw(st.sampled_from(["as is", "insert", "replace", "truncate", "wrap", "last"]))
    if how == "insert":
        text = text[:cut] + draw(noise) + text[cut:]
    elif how == "replace" and cut < len(text):
        text = text[:cut] + draw(noise) + text[cut + 1 :]
    elif how == "truncate":
        text = text[:cut]
    elif how == "wrap":
        text = draw(noise) + text + draw(noise)
    elif how == "last":
        text = text[:-1] + draw(st.sampled_from(_ALPHABET))
    form = draw(st.sampled_from(["str", "bytes", "bytearray"]))
    if form == "str":
        return text
    data = text.encode("utf-8")
    return data if form == "bytes" else bytearray(data)


@settings(max_examples=600, deadline=None)
@given(envelopes())
def test_the_bytes_reader_answers_as_the_text_reader_did(envelope):
    assert verdict(envelope_bytes, envelope) == verdict(reference, envelope)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64), st.just(memoryview(b"kez:e1:"))))
def test_garbage_gets_the_same_verdict(envelope):
    if isinstance(envelope, str | bytes):
        envelope = PREFIX + envelope if isinstance(envelope, str) else PREFIX.encode() + envelope
    assert verdict(envelope_bytes, envelope) == verdict(reference, envelope)


@pytest.mark.parametrize("bucket", [BUCKETS[0], BUCKETS[-1]])
def test_the_smallest_and_largest_envelopes_round_trip(bucket):
    raw = bytes(range(256)) * (bucket // 256 + 1)
    raw = raw[: min(_SEALED_SIZES, key=lambda s: abs(s - bucket - 48))]
    text = text_of(raw)
    assert envelope_bytes(text) == envelope_bytes(text.encode()) == raw
