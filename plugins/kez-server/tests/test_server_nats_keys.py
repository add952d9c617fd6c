"""The server's NATS keys and config, NATS JWTs, and the callout's answer to garbage."""

from __future__ import annotations

import stat

import nkeys
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kez_server import nats_jwt
from kez_server.config import ConfigError
from kez_server.db import Store
from kez_server.nats_callout import Authorizer
from kez_server.nats_config import (
    ISSUER_SUFFIX,
    SERVICE_SUFFIX,
    NatsKeyError,
    load_keys,
    render_config,
    write_config,
)


def test_keys_are_made_once_beside_the_database_mode_0600(tmp_path):
    db = str(tmp_path / "kez.db")
    first = load_keys(db)
    for suffix in (ISSUER_SUFFIX, SERVICE_SUFFIX):
        path = tmp_path / f"kez.db{suffix}"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_keys(db)
    assert (again.issuer_public, again.service_public) == (
        first.issuer_public,
        first.service_public,
    )
    assert first.issuer_public.startswith("A") and first.service_public.startswith("U")
    shown = repr(first)
    assert first.issuer_seed.decode() not in shown and first.service_seed.decode() not in shown


def test_a_postgresql_database_needs_a_keys_folder(tmp_path):
    with pytest.raises(ConfigError, match="--nats-keys"):
        load_keys("postgresql://u:secret@db/kez")
    keys = load_keys("postgresql://u:secret@db/kez", str(tmp_path))
    assert (tmp_path / f"kez-server{ISSUER_SUFFIX}").is_file() and keys.issuer_public


def test_a_key_file_of_the_wrong_kind_is_a_typed_error_and_is_left_alone(tmp_path):
    path = tmp_path / f"kez.db{ISSUER_SUFFIX}"
    user_seed = nkeys.encode_seed(b"\x01" * 32, nkeys.PREFIX_BYTE_USER)
    path.write_bytes(user_seed)
    with pytest.raises(NatsKeyError, match="account seed"):
        load_keys(str(tmp_path / "kez.db"))
    assert path.read_bytes() == user_seed


def test_the_config_trusts_the_issuer_and_has_no_other_users(tmp_path):
    db = str(tmp_path / "kez.db")
    out = write_config(db, "127.0.0.1:4333", tmp_path / "nats.conf")
    text = out.read_text()
    keys = load_keys(db)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert f'issuer: "{keys.issuer_public}"' in text
    assert f'users: [ {{ nkey: "{keys.service_public}" }} ]' in text
    assert f'auth_users: [ "{keys.service_public}" ]' in text
    assert "port: 4333" in text and "password" not in text
    assert keys.issuer_seed.decode() not in text and keys.service_seed.decode() not in text
    assert render_config(keys, "[::1]:4222").count('host: "::1"') == 1


def test_a_jwt_round_trips_and_a_changed_one_is_refused():
    pair = nkeys.from_seed(bytearray(nkeys.encode_seed(b"\x02" * 32, nkeys.PREFIX_BYTE_ACCOUNT)))

    def verify(issuer: str, data: bytes, sig: bytes) -> bool:
        try:
            return issuer == pair.public_key.decode() and pair.verify(data, sig)
        except nkeys.ErrInvalidSignature:
            return False

    token = nats_jwt.encode({"sub": "x", "nats": {"type": "user"}}, pair)
    claims = nats_jwt.decode(token, verify)
    assert claims["sub"] == "x" and claims["iss"] == pair.public_key.decode()
    assert len(claims["jti"]) == 52
    head, body, sig = token.split(".")
    with pytest.raises(nats_jwt.JwtError):
        nats_jwt.decode(f"{head}.{body}x.{sig}", verify)


@pytest.fixture(scope="module")
def authorizer(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("callout") / "kez.db")
    store = Store(db)
    store.migrate()
    yield Authorizer(store, load_keys(db))
    store.close()


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=400), st.text(max_size=400).map(str.encode)))
def test_the_callout_answers_garbage_with_nothing_and_never_raises(authorizer, data):
    assert authorizer.answer(data) == b""


def test_a_request_signed_by_another_key_type_is_ignored(authorizer):
    account = nkeys.from_seed(bytearray(nkeys.encode_seed(b"\x03" * 32, nkeys.PREFIX_BYTE_ACCOUNT)))
    forged = nats_jwt.encode(
        {"sub": "x", "nats": {"user_nkey": "U", "server_id": {"id": "N"}}}, account
    )
    assert authorizer.answer(forged.encode()) == b""  # only a server (N…) key signs requests
