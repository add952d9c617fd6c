"""A handle follows its identity across a key rotation (payload.identity, migration 0002).

The identity id is the key that signed seqno 1 and never changes; the
primary does. A registration names both; the server trusts a primary that
is not the identity id only when its stored copy of the chain says that key
is the current primary, and then moves a taken handle of the same identity
to the new key.
"""

from __future__ import annotations

from kez_core.keys import Signer
from kez_core.sigchain import SigchainBuilder
from server_helpers import (
    NDJSON,
    assert_error,
    body,
    extend,
    head_revision,
    identity_path,
    new_handle,
    registration,
)


def _rotated_chain() -> tuple[Signer, Signer, SigchainBuilder]:
    old = Signer.generate("ed25519")
    builder = SigchainBuilder()
    extend(builder, old)
    new = Signer.generate("ed25519")
    builder.rotate(old, new)
    return old, new, builder


def _push(client, identity: str, lines: list[bytes]) -> None:
    response = client.post(identity_path(identity), content=body(lines), headers=NDJSON)
    assert response.status_code == 200, response.text


def test_handle_moves_to_the_new_primary_after_a_rotation(client, server):
    old, new, builder = _rotated_chain()
    identity, handle = old.key_id, new_handle()
    _push(client, identity, builder.lines[:1])  # the copy here does not know the rotation yet
    first = client.post("/v1/register", json=registration(old, handle))
    assert first.status_code == 201, first.text

    # the new key of the same identity: the server's copy must show the rotation first
    moved = registration(new, handle, identity=identity)
    assert_error(client.post("/v1/register", json=moved), 422, "not_current_primary")
    _push(client, identity, builder.lines)
    response = client.post("/v1/register", json=moved)
    assert response.status_code == 200, response.text  # moved, not created
    data = response.json()
    assert data["primary"] == new.key_id and data["identity"] == identity
    assert data["sigchain_url"] == server.url + identity_path(identity)
    assert client.get(f"/v1/u/{handle}").json() == data

    # the rotated-away key cannot take it back, and the envelope is used once
    assert_error(
        client.post("/v1/register", json=registration(old, handle)), 422, "not_current_primary"
    )
    assert_error(client.post("/v1/register", json=moved), 409, "replay")


def test_new_registration_after_a_rotation_points_at_the_identity(client, server):
    old, new, builder = _rotated_chain()
    handle = new_handle()
    envelope = registration(new, handle, identity=old.key_id)
    assert_error(client.post("/v1/register", json=envelope), 422, "unknown_identity")
    _push(client, old.key_id, builder.lines)
    response = client.post("/v1/register", json=envelope)
    assert response.status_code == 201, response.text
    assert response.json()["sigchain_url"] == server.url + identity_path(old.key_id)
    finger = client.get(
        "/.well-known/webfinger", params={"resource": f"acct:{handle}@example.org"}
    ).json()
    assert finger["links"][0]["href"] == server.url + identity_path(old.key_id)


def test_a_stranger_cannot_claim_someone_elses_identity(client):
    old, _new, builder = _rotated_chain()
    _push(client, old.key_id, builder.lines)
    stranger = Signer.generate("ed25519")
    envelope = registration(stranger, new_handle(), identity=old.key_id)
    assert_error(client.post("/v1/register", json=envelope), 422, "not_current_primary")


def test_another_identity_cannot_move_a_handle(client):
    taken = client.post(
        "/v1/register", json=registration(Signer.generate("ed25519"), handle := new_handle())
    )
    assert taken.status_code == 201
    old, new, builder = _rotated_chain()
    _push(client, old.key_id, builder.lines)
    envelope = registration(new, handle, identity=old.key_id)
    assert_error(client.post("/v1/register", json=envelope), 409, "handle_taken")


def test_identity_must_be_a_key_id_in_normal_form(client):
    signer = Signer.generate("ed25519")
    for bad in (17, "", "ed25519:XYZ", signer.key_id.upper(), "npub1xyz"):
        envelope = registration(signer, new_handle(), identity=bad)
        assert_error(client.post("/v1/register", json=envelope), 400, "bad_payload")


def test_migration_0002_keeps_handles_registered_before_it(tmp_path):
    from alembic import command
    from alembic.config import Config
    from kez_server.db import Store
    from kez_server.schema import VERSION_TABLE

    store = Store(str(tmp_path / "old.db"))
    try:
        cfg = Config()
        cfg.set_main_option("script_location", "kez_server:migrations")
        cfg.set_main_option("version_table", VERSION_TABLE)
        with store.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
            conn.exec_driver_sql(
                "INSERT INTO kez_handles (handle, primary_key, envelope_id, envelope, registered_at) "
                "VALUES ('alice', 'ed25519:"
                + "ab" * 32
                + "', 'e1', x'7b7d', '2026-01-01T00:00:00Z')"
            )
            conn.commit()
        assert store.revision() == "0001"
        store.migrate()
        assert store.revision() == head_revision()
        row = store.lookup("alice")
        assert row is not None and row["identity"] == row["primary_key"] == "ed25519:" + "ab" * 32
    finally:
        store.close()
