"""The signed profile object and the profile_key body/store."""

from __future__ import annotations

import hashlib

import pytest

from kez_core.errors import DecodeError, SchemaError, SignatureError
from kez_core.keys import Signer
from kez_core.profile import keys as pkeys
from kez_core.profile.signed_profile import (
    PictureMismatch,
    check_picture,
    check_profile,
    create_profile,
    read_profile,
)
from kez_core.signed import SignedObject
from kez_core.sigchain.model import ChainState

PNG = b"\x89PNG\r\n\x1a\n fake picture bytes"
REF = "https://kez.example/v1/u/alice/picture#kez-visual-v1:" + "ab" * 16


def _state(primary: Signer, devices: dict[str, str] | None = None) -> ChainState:
    return ChainState(
        primary.key_id, primary.key_id, "0" * 64, 1, "2026-01-01T00:00:00Z", devices or {}
    )


def test_profile_round_trip_and_chain_check() -> None:
    alice = Signer.generate()
    obj = create_profile(
        alice,
        alice.key_id,
        name="Alice",
        about="hi",
        picture=REF,
        picture_sha256=hashlib.sha256(PNG).hexdigest(),
    )
    again = SignedObject.from_dict(obj.to_dict())
    profile = check_profile(again, _state(alice))
    assert (profile.name, profile.about, profile.picture) == ("Alice", "hi", REF)
    check_picture(profile, PNG)
    with pytest.raises(PictureMismatch):
        check_picture(profile, PNG + b"x")


def test_device_may_sign_stranger_may_not() -> None:
    alice, device, mallory = Signer.generate(), Signer.generate(), Signer.generate()
    by_device = create_profile(device, alice.key_id, name="A")
    assert check_profile(by_device, _state(alice, {device.key_id: "phone"})).signer == device.key_id
    with pytest.raises(SignatureError):
        check_profile(by_device, _state(alice))
    forged = create_profile(mallory, alice.key_id, name="Alice")
    with pytest.raises(SignatureError):
        check_profile(forged, _state(alice))
    other = create_profile(mallory, mallory.key_id, name="Mallory")
    with pytest.raises(SignatureError):
        check_profile(other, _state(alice))


def test_tampered_payload_fails() -> None:
    alice = Signer.generate()
    data = create_profile(alice, alice.key_id, name="Alice").to_dict()
    data["payload"]["name"] = "Eve"
    with pytest.raises(SignatureError):
        check_profile(SignedObject.from_dict(data), _state(alice))
    data = create_profile(alice, alice.key_id, name="Alice").to_dict()
    data["signature"]["key"] = Signer.generate().key_id
    with pytest.raises(SignatureError):
        check_profile(SignedObject.from_dict(data), _state(alice))


@pytest.mark.parametrize(
    "change",
    [
        {"name": 5},
        {"name": "x" * 101},
        {"about": "x" * 2001},
        {"picture": "ftp://x/p"},
        {"picture": REF, "picture_sha256": "XYZ"},
        {"picture_sha256": "0" * 64},
        {"picture": "https://x/p#kez-visual-v1:00", "picture_sha256": "0" * 64},
        {"updated_at": "yesterday"},
        {"identity": "ed25519:ZZ"},
    ],
)
def test_bad_fields_are_decode_errors(change: dict) -> None:
    alice = Signer.generate()
    data = create_profile(alice, alice.key_id, name="Alice").to_dict()
    data["payload"].update(change)
    with pytest.raises(DecodeError):
        read_profile(SignedObject.from_dict(data))


def test_profile_key_body_and_store(tmp_path) -> None:
    alice, bob = Signer.generate(), Signer.generate()
    key, digest = bytes(range(32)), "cd" * 32
    body = pkeys.profile_key_body(alice.key_id, key, digest)
    assert body["kind"] == "profile_key"
    store = pkeys.ProfileKeyStore(tmp_path)
    assert store.get(alice.key_id, digest) is None
    pkeys.accept_profile_key(store, body, alice.key_id)
    assert store.get(alice.key_id, digest) == key
    assert store.get(alice.key_id, "ef" * 32) is None
    assert (tmp_path / pkeys.STORE_FILE).stat().st_mode & 0o777 == 0o600
    # bob cannot plant a key for alice's picture
    with pytest.raises(SchemaError):
        pkeys.accept_profile_key(
            store, pkeys.profile_key_body(alice.key_id, bytes(32), "ef" * 32), bob.key_id
        )
    for bad in ({}, {**body, "key": "00"}, {**body, "picture_sha256": 1}, {**body, "kind": "text"}):
        with pytest.raises(SchemaError):
            pkeys.parse_profile_key_body(bad)
    # a new picture's key is kept beside the old; only the last few stay
    for i in range(6):
        store.put(pkeys.ProfileKey(alice.key_id, bytes([i]) * 32, f"{i:02x}" * 32))
    assert store.get(alice.key_id, "05" * 32) == bytes([5]) * 32
    assert store.get(alice.key_id, digest) is None


def test_concurrent_puts_lose_no_key(tmp_path) -> None:
    """Keys arriving at once (several listeners, several devices) are all kept."""
    import threading

    store = pkeys.ProfileKeyStore(tmp_path)
    people = [Signer.generate().key_id for _ in range(24)]

    def put(identity: str) -> None:
        pkeys.ProfileKeyStore(tmp_path).put(pkeys.ProfileKey(identity, bytes(32), "ab" * 32))

    threads = [threading.Thread(target=put, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(store.get(p, "ab" * 32) == bytes(32) for p in people)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=15), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["kind", "identity", "key", "picture_sha256", "x"]), _json)
    | _json
)
def test_profile_key_body_parser_only_raises_typed(body) -> None:
    try:
        pkeys.parse_profile_key_body(body)
    except SchemaError:
        pass


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["identity", "signer", "name", "about", "picture", "picture_sha256", "updated_at"]
        ),
        _json,
    )
)
def test_read_profile_only_raises_typed(fields) -> None:
    alice = Signer.generate()
    data = create_profile(alice, alice.key_id, name="A").to_dict()
    data["payload"].update(fields)
    try:
        read_profile(SignedObject.from_dict(data))
    except DecodeError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=120))
def test_split_reference_only_raises_typed(text) -> None:
    from kez_core.profile.visual import split_reference

    try:
        split_reference(text)
    except DecodeError:
        pass
