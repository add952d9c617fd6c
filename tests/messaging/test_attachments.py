"""Attachments (docs/spec.md §12, "Attachments"): raw bytes sealed after a message's JSON, signed by hash."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime

import pytest
from kez_core.errors import SchemaError
from kez_core.keys import Signer
from kez_core.messaging import InboxSecret, MessageTooLarge, create_message, open_envelope, seal
from kez_core.messaging.envelope import (
    MAX_ATTACHMENT_ENVELOPE_TEXT,
    MAX_ENVELOPE_TEXT,
    envelope_bytes,
)
from kez_core.messaging.message import attachment_field
from kez_core.messaging.padding import MAX_BUCKET, MESSAGE_MAX_BUCKET

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def people():
    return Signer.generate(), Signer.generate(), InboxSecret.generate()


def signed(people, body):
    alice, bob, inbox = people
    return create_message(
        alice,
        sender_identity=alice.key_id,
        recipient=bob.key_id,
        inbox_key=inbox.key_id,
        body=body,
        created_at=T0,
    )


def opened(people, envelope):
    _, bob, inbox = people
    return open_envelope(envelope, [inbox], identity=bob.key_id, replay=None, at=T0)


def test_an_attachment_opens_with_its_message_and_the_id_is_the_signed_objects(people):
    data = os.urandom(300_000)  # past the 128 KiB bucket: only attachments fill the larger ones
    body = {"kind": "blob", "attachment": attachment_field(data)}
    obj = signed(people, body)
    envelope = seal(obj.canonical() + b"\n" + data, people[2].key_id)
    assert MAX_ENVELOPE_TEXT < len(envelope) <= MAX_ATTACHMENT_ENVELOPE_TEXT
    message = opened(people, envelope)
    assert message.attachment == data and message.id == obj.id
    assert body["attachment"] == {"size": 300_000, "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize(
    ("what", "content"),
    [
        ("other bytes than signed", lambda obj, data: obj.canonical() + b"\n" + data[:-1] + b"x"),
        ("fewer bytes than signed", lambda obj, data: obj.canonical() + b"\n" + data[:-1]),
        ("no bytes for a body that names some", lambda obj, data: obj.canonical()),
    ],
)
def test_an_attachment_that_is_not_the_signed_one_is_refused(people, what, content):
    data = os.urandom(5000)
    obj = signed(people, {"kind": "blob", "attachment": attachment_field(data)})
    with pytest.raises(SchemaError):
        opened(people, seal(content(obj, data), people[2].key_id))


def test_bytes_after_a_message_that_names_no_attachment_are_refused(people):
    obj = signed(people, {"kind": "text", "text": "hi"})
    with pytest.raises(SchemaError, match="names no attachment"):
        opened(people, seal(obj.canonical() + b"\nsmuggled", people[2].key_id))


@pytest.mark.parametrize(
    "field",
    [
        {"size": 1},
        {"size": -1, "sha256": "00" * 32},
        {"size": 1, "sha256": "AB" * 32},
        {"size": 1, "sha256": "00" * 32, "more": 1},
        "x",
        {"size": MAX_BUCKET, "sha256": "00" * 32},
    ],
)
def test_a_malformed_attachment_field_is_refused_at_the_sender(people, field):
    with pytest.raises(SchemaError):
        signed(people, {"kind": "blob", "attachment": field})


def test_the_json_alone_stays_within_the_128_kib_bucket(people):
    obj = signed(people, {"kind": "text", "text": "x" * MESSAGE_MAX_BUCKET})
    with pytest.raises(MessageTooLarge):
        seal(obj.canonical(), people[2].key_id)
    big = os.urandom(MAX_BUCKET - 100)  # with its message, past the largest bucket
    obj = signed(people, {"kind": "blob", "attachment": attachment_field(big)})
    with pytest.raises(MessageTooLarge):
        seal(obj.canonical() + b"\n" + big, people[2].key_id)


def test_an_envelope_past_the_largest_bucket_is_refused_unread():
    from kez_core.messaging import EnvelopeError

    with pytest.raises(EnvelopeError, match="longer than the largest"):
        envelope_bytes("kez:e1:" + "A" * MAX_ATTACHMENT_ENVELOPE_TEXT)


def test_seal_for_devices_checks_the_attachment_against_the_body():
    from kez_core.messaging import seal_for_devices

    # the body/attachment pairing is checked before anything is signed or the chain is read
    with pytest.raises(SchemaError):
        seal_for_devices(
            Signer.generate(),
            sender_identity="ed25519:" + "0" * 64,
            recipient=None,  # type: ignore[arg-type]
            body={"kind": "blob", "attachment": attachment_field(b"abc")},
            attachment=b"abd",
        )
    with pytest.raises(SchemaError):
        seal_for_devices(
            Signer.generate(),
            sender_identity="ed25519:" + "0" * 64,
            recipient=None,  # type: ignore[arg-type]
            body={"kind": "blob", "attachment": attachment_field(b"abc")},
        )


def test_canonical_base64url_only():
    from kez_core.messaging import EnvelopeError

    for body in ("AA+/", "AA==", "AB", "A", "AA A"):
        with pytest.raises(EnvelopeError):
            envelope_bytes("kez:e1:" + body)
