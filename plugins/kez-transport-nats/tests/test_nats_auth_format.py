"""The callout's wire format (`kez_transport_nats.auth`): nkeys, nonce signatures, tokens.

The decoders read what any client sends in CONNECT, so they get property
tests: they answer None for anything that is not theirs, never raise.
"""

from __future__ import annotations

import base64

import nkeys
from hypothesis import given
from hypothesis import strategies as st
from kez_core.keys import Signer
from kez_core.registry import default_registry
from kez_transport_nats.auth import (
    ClientAuth,
    decode_sig,
    make_token,
    parse_token,
    parse_user_nkey,
    signed_bytes,
    user_nkey,
)

NONCE = "pUcPBEr3VqQJsVtIYdgc_A"


def test_an_ed25519_key_is_its_own_user_nkey_as_nkeys_spells_it():
    signer = Signer.generate("ed25519")
    public = signer.alg.public_from_secret(signer.secret)
    pair = nkeys.from_seed(bytearray(nkeys.encode_seed(signer.secret, nkeys.PREFIX_BYTE_USER)))
    assert user_nkey(public) == pair.public_key.decode()
    assert parse_user_nkey(user_nkey(public)) == public


def test_the_nonce_signature_is_nkeys_own():
    signer = Signer.generate("ed25519")
    auth = ClientAuth(signer, signer.key_id)
    pair = nkeys.from_seed(bytearray(nkeys.encode_seed(signer.secret, nkeys.PREFIX_BYTE_USER)))
    assert auth.sign_nonce(NONCE) == base64.b64encode(pair.sign(NONCE.encode()))
    assert auth.nkey == pair.public_key.decode()


def test_go_style_raw_url_safe_signatures_are_accepted_like_padded_standard_ones():
    signer = Signer.generate("ed25519")
    ed25519 = default_registry().key_algorithm("ed25519")
    public = signer.alg.public_from_secret(signer.secret)
    for _ in range(64):  # enough signatures that some hold '-'/'_' in URL-safe form
        raw = signer.sign(NONCE.encode())
        padded_std = base64.b64encode(raw).decode()
        raw_url = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        assert decode_sig(padded_std) == raw == decode_sig(raw_url)
        assert ed25519.verify(public, NONCE.encode(), decode_sig(raw_url))


def test_a_bip340_token_binds_nonce_nkey_identity_and_key():
    signer = Signer.generate("nostr")
    auth = ClientAuth(signer, signer.key_id)
    assert auth.nkey.startswith("U") and parse_user_nkey(auth.nkey) is not None
    auth.sign_nonce(NONCE)
    token = parse_token(auth.token())
    assert token.identity == signer.key_id and token.key == signer.key_id
    data = signed_bytes(NONCE, auth.nkey, signer.key_id, signer.key_id)
    assert (
        data == f"kez-nats-auth/1\n{NONCE}\n{auth.nkey}\n{signer.key_id}\n{signer.key_id}".encode()
    )
    public = signer.alg.public_from_secret(signer.secret)
    assert signer.alg.verify(public, data, bytes.fromhex(token.sig))
    assert not signer.alg.verify(
        public,
        signed_bytes("other", auth.nkey, signer.key_id, signer.key_id),
        bytes.fromhex(token.sig),
    )


def test_an_ed25519_token_names_only_the_identity():
    signer = Signer.generate("ed25519")
    token = parse_token(ClientAuth(signer, "ed25519:" + "ab" * 32).token())
    assert token.identity == "ed25519:" + "ab" * 32 and token.key is None and token.sig is None


def test_tokens_that_are_not_ours_read_as_none():
    assert parse_token("s3cret") is None
    assert parse_token('{"kez":"other","v":1}') is None
    assert parse_token('{"kez":"kez.nats_auth","v":2}') is None
    assert parse_token('{"kez":"kez.nats_auth","v":1,"identity":5}') is None
    assert parse_token(make_token(identity="x") + " " * 4096) is None  # over the size cap


@given(st.one_of(st.text(max_size=300), st.binary(max_size=100), st.none(), st.integers()))
def test_decoders_never_raise(value):
    assert decode_sig(value) is None or len(decode_sig(value)) == 64
    assert parse_user_nkey(value) is None or len(parse_user_nkey(value)) == 32
    token = parse_token(value)
    assert token is None or token.identity is None or isinstance(token.identity, str)


@given(st.binary(min_size=32, max_size=32), st.integers(0, 55), st.sampled_from("AB2Z7"))
def test_a_changed_character_of_an_nkey_is_refused(public, where, char):
    text = user_nkey(public)
    changed = text[:where] + char + text[where + 1 :]
    if changed != text:
        assert parse_user_nkey(changed) is None  # the prefix or the CRC-16 catches it
