"""The send path's shortcuts change no byte and skip no check (issue 18 §2).

- `Signer` parses its secret once (the key object lives on the Signer) and
  signs exactly what the algorithm signs from the secret each time;
- `sign` keeps JCS(payload) it just computed: the same bytes as computing again;
- `create_message` checks the inbox key and body before signing, and
  `seal_message` skips re-reading only an object `create_message` made;
- `format_time` (an f-string now) writes what strftime writes.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kez_core.errors import SchemaError
from kez_core.jcs import canonicalize
from kez_core.keys import Signer
from kez_core.messaging import (
    InboxSecret,
    create_message,
    open_envelope,
    seal_message,
    text_body,
)
from kez_core.messaging.message import made_here
from kez_core.signed import SignedObject, sign
from kez_core.timefmt import format_time

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("alg", ["ed25519", "nostr"])
def test_a_signer_parses_its_secret_once_and_signs_the_same(alg):
    signer = Signer.generate(alg)
    first = signer.sign(b"hello")
    parsed = signer._sign_fn
    assert parsed is not None
    signer.sign(b"again")
    assert signer._sign_fn is parsed
    if alg == "ed25519":  # deterministic: the very bytes the algorithm makes from the secret
        assert first == signer.alg.sign(signer.secret, b"hello")
    public = bytes.fromhex(signer.key_id.split(":", 1)[1])
    assert signer.alg.verify(public, b"hello", first)
    copy = pickle.loads(pickle.dumps(signer))  # the key object is not pickled
    assert copy == signer and copy.sign(b"x") and copy.key_id == signer.key_id


def test_sign_keeps_the_payload_bytes_it_signed():
    signer = Signer.generate()
    obj = sign("claim", {"a": "é", "n": 1}, signer)
    fresh = SignedObject.from_dict(obj.to_dict())
    assert obj.payload_bytes == canonicalize(obj.payload) == fresh.payload_bytes
    assert obj.id == fresh.id and obj.canonical() == fresh.canonical()


def test_create_message_refuses_before_signing_and_seal_rereads_other_objects():
    alice, bob, inbox = Signer.generate(), Signer.generate(), InboxSecret.generate()
    kwargs = dict(sender_identity=alice.key_id, recipient=bob.key_id, created_at=T0)
    with pytest.raises(SchemaError, match="inbox_key"):
        create_message(alice, inbox_key="x25519:XYZ", body=text_body("hi"), **kwargs)
    with pytest.raises(SchemaError, match="body"):
        create_message(alice, inbox_key=inbox.key_id, body={"kind": "text"}, **kwargs)
    obj = create_message(alice, inbox_key=inbox.key_id, body=text_body("hi"), **kwargs)
    assert made_here(obj)
    copy = SignedObject.from_dict(obj.to_dict())
    assert not made_here(copy)
    # the same envelope content either way, and it opens
    for o in (obj, copy):
        message = open_envelope(seal_message(o), [inbox], identity=bob.key_id, replay=None, at=T0)
        assert message.id == obj.id
    bad = dict(obj.to_dict())
    bad["payload"] = {**obj.payload, "inbox_key": "x25519:nope"}
    with pytest.raises(SchemaError):
        seal_message(SignedObject.from_dict(bad))


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        ),
    )
)
def test_format_time_writes_what_strftime_writes(when):
    assert format_time(when) == when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_json_text = st.text(st.characters(codec="utf-8"), max_size=40)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _json_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_json_text, inner, max_size=4),
    max_leaves=12,
)


@given(
    text=_json_text,
    extra=st.dictionaries(
        _json_text.filter(lambda k: k not in ("kind", "text")), _json, max_size=3
    ),
    alg=st.sampled_from(["ed25519", "nostr"]),
)
def test_create_message_writes_exactly_the_jcs_of_what_it_signs(text, extra, alg):
    """JCS once: the spliced payload and object bytes are canonicalize()'s, the signature holds."""
    signer, bob, inbox = _SIGNERS[alg], _SIGNERS["ed25519"], _INBOX
    body = {**extra, "kind": "text", "text": text}
    obj = create_message(
        signer,
        sender_identity=signer.key_id,
        recipient=bob.key_id,
        inbox_key=inbox.key_id,
        body=body,
    )
    assert obj.payload_bytes == canonicalize(obj.payload)
    assert obj.canonical() == canonicalize(obj.to_dict())
    fresh = SignedObject.from_dict(obj.to_dict())
    assert fresh.id == obj.id and fresh.canonical() == obj.canonical()
    from kez_core.signed import verify_signature

    verify_signature(fresh)
    assert obj.payload["type"] == "kez.message" and obj.payload["version"] == 1


_SIGNERS = {"ed25519": Signer.generate("ed25519"), "nostr": Signer.generate("nostr")}
_INBOX = InboxSecret.generate()


def test_created_at_is_now_to_the_second_or_what_was_given():
    from kez_core.timefmt import now

    alice, inbox = Signer.generate(), InboxSecret.generate()
    before = format_time(now())
    obj = create_message(
        alice,
        sender_identity=alice.key_id,
        recipient=alice.key_id,
        inbox_key=inbox.key_id,
        body=text_body("hi"),
    )
    assert before <= obj.payload["created_at"] <= format_time(now())
    given_at = T0 + timedelta(microseconds=5)
    obj = create_message(
        alice,
        sender_identity=alice.key_id,
        recipient=alice.key_id,
        inbox_key=inbox.key_id,
        body=text_body("hi"),
        created_at=given_at,
    )
    assert obj.payload["created_at"] == format_time(T0)


def test_envelope_text_is_base64url_without_padding():
    import base64

    from kez_core.messaging.envelope import PREFIX, envelope_bytes

    alice, inbox = Signer.generate(), InboxSecret.generate()
    obj = create_message(
        alice,
        sender_identity=alice.key_id,
        recipient=alice.key_id,
        inbox_key=inbox.key_id,
        body=text_body("é" * 300),
    )
    text = seal_message(obj)
    raw = envelope_bytes(text)
    assert text == PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
