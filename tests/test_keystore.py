"""The keystore on disk: identities, default resolution, modes, passphrases, races."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest
from kez_core.builtins import bip340, ed25519, encodings
from kez_core.errors import KeyFormatError, PassphraseError, StoreError, UnknownNameError
from kez_core.keys import Signer
from kez_core.keystore import Keystore, atomic_write, signer_from_text
from kez_core.registry import Registry

from kez_core import nip19

NIP49_NCRYPTSEC = (
    "ncryptsec1qgg9947rlpvqu76pj5ecreduf9jxhselq2nae2kghhvd5g7dgjtcxfqtd67p9m0w57lspw8gsq6yphnm8623nsl8xn9"
    "j4jdzz84zm3frztj3z7s35vpzmqf6ksu8r89qk5z2zxfmu5gv8th8wclt0h4p"
)
NIP49_PASSWORD = "nostr"
NIP49_SECRET = "3501454135014541350145413501453fefb02227e449e57cf4d3a3ce05378683"


@pytest.fixture(scope="module")
def registry():
    return Registry(plugins=[ed25519, bip340, encodings], entry_points=False, env={})


@pytest.fixture
def store(tmp_path, registry):
    return Keystore(tmp_path / "home", registry)


def no_passphrase():
    raise AssertionError("the passphrase provider must not be called for an unencrypted key")


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------- create / read


def test_empty_store(store):
    assert store.list() == []
    assert store.default_name() is None
    with pytest.raises(StoreError, match="no identity"):
        store.get()
    with pytest.raises(StoreError, match="no identity named 'alice'"):
        store.get("alice")


@pytest.mark.parametrize("alg", ["ed25519", "nostr"])
def test_create_list_get(store, alg):
    record = store.create("alice", alg, None)
    assert record.name == "alice" and record.alg == alg and not record.encrypted
    assert record.key_id.startswith(f"{alg}:")
    assert store.list() == [record]
    assert store.get("alice") == record
    assert store.get() == record  # the only identity is the default
    signer = store.signer("alice", no_passphrase)
    assert signer.key_id == record.key_id
    facts = json.loads((store.identities_dir / "alice" / "identity.json").read_text())
    assert facts["key_id"] == record.key_id and facts["encrypted"] is False
    assert "secret" not in json.dumps(facts).lower()


def test_default_resolution(store):
    alice = store.create("alice", "ed25519", None)
    assert store.default_name() == "alice"  # the first identity becomes the default
    bob = store.create("bob", "nostr", None)
    assert [r.name for r in store.list()] == ["alice", "bob"]
    assert store.default_name() == "alice"
    assert store.get() == alice
    store.set_default("bob")
    assert store.default_name() == "bob"
    assert store.get() == bob
    assert store.get("alice") == alice
    with pytest.raises(StoreError):
        store.set_default("carol")
    assert store.get() == bob


def test_several_identities_and_no_default(store):
    store.create("alice", "ed25519", None)
    store.create("bob", "nostr", None)
    (store.home / "config.json").unlink()
    assert store.default_name() is None
    with pytest.raises(StoreError, match="several identities") as caught:
        store.get()
    assert "alice" in caught.value.message and "bob" in caught.value.message
    assert "--identity" in caught.value.hint


def test_default_pointing_at_a_removed_identity(store):
    import shutil

    store.create("alice", "ed25519", None)
    store.create("bob", "ed25519", None)
    store.set_default("bob")
    shutil.rmtree(store.identities_dir / "bob")
    assert store.default_name() == "alice"  # the only one left


@pytest.mark.parametrize(
    "name", ["", ".hidden", "-x", "a/b", "../escape", "a b", "x" * 65, "alice\n", "é"]
)
def test_bad_identity_names(store, name):
    with pytest.raises(StoreError):
        store.create(name, "ed25519", None)
    assert not (store.home / "escape").exists()
    assert store.list() == []


def test_unknown_algorithm(store):
    with pytest.raises(UnknownNameError):
        store.create("alice", "rsa", None)


# ------------------------------------------------------------------ file modes


def test_secret_file_modes(store):
    store.create("alice", "ed25519", None)
    folder = store.identities_dir / "alice"
    assert stat.S_IMODE((folder / "secret.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.home.stat().st_mode) == 0o700
    assert not [p for p in store.identities_dir.iterdir() if p.name.startswith(".")]


def test_atomic_write_mode_and_no_leftovers(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    atomic_write(target, b"one")
    atomic_write(target, b"two", 0o640)
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_atomic_write_failure_keeps_old_content(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    atomic_write(target, b"old")

    def failing_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


# ----------------------------------------------------------------- passphrases


@pytest.mark.parametrize("alg", ["ed25519", "nostr"])
def test_encrypted_round_trip(store, alg):
    record = store.create("alice", alg, b"s3cret pass")
    assert record.encrypted
    pem = (store.identities_dir / "alice" / "secret.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    calls = []

    def provider():
        calls.append(1)
        return b"s3cret pass"

    signer = store.signer("alice", provider)
    assert signer.key_id == record.key_id
    assert calls == [1]
    assert signer.secret.hex().encode() not in pem


def test_wrong_passphrase(store):
    store.create("alice", "ed25519", b"right")
    with pytest.raises(PassphraseError) as caught:
        store.signer("alice", lambda: b"wrong")
    assert caught.value.exit_code == 4


def test_missing_passphrase(store):
    store.create("alice", "nostr", b"right")
    with pytest.raises(PassphraseError):
        store.signer("alice", lambda: None)
    with pytest.raises(PassphraseError):
        store.signer("alice", lambda: b"")


def test_export_forms(store):
    record = store.create("alice", "nostr", b"pw")
    signer = store.signer("alice", lambda: b"pw")
    assert store.export_secret("alice", "hex", lambda: b"pw") == signer.secret.hex()
    assert (
        nip19.decode_expect(store.export_secret("alice", "nsec", lambda: b"pw"), "nsec")
        == signer.secret
    )
    pem = store.export_secret("alice", "pem", lambda: b"pw")
    assert (
        signer_from_text(pem, alg=None, passphrase=no_passphrase, registry=store.registry).key_id
        == record.key_id
    )
    with pytest.raises(PassphraseError):
        store.export_secret("alice", "ncryptsec", lambda: b"pw")


# ------------------------------------------------------------- no overwriting


def test_duplicate_name_refused_and_untouched(store, registry):
    store.create("alice", "ed25519", b"pw")
    folder = store.identities_dir / "alice"
    before = snapshot(folder)
    other = Signer.generate("nostr", registry)
    with pytest.raises(StoreError, match="already exists"):
        store.add("alice", other, None)
    with pytest.raises(StoreError, match="already exists"):
        store.create("alice", "ed25519", None)
    assert snapshot(folder) == before
    assert [p.name for p in store.identities_dir.iterdir()] == ["alice"]


def test_same_key_twice_refused(store, registry):
    signer = Signer.generate("ed25519", registry)
    store.add("alice", signer, None)
    with pytest.raises(StoreError, match="already stored as identity 'alice'"):
        store.add("bob", signer, None)
    assert [r.name for r in store.list()] == ["alice"]


def test_damaged_identity_file_is_a_store_error(store):
    store.create("alice", "ed25519", None)
    (store.identities_dir / "alice" / "identity.json").write_text("{not json")
    with pytest.raises(StoreError, match="unreadable"):
        store.get("alice")


def test_key_file_not_matching_its_key_id(store, registry):
    store.create("alice", "ed25519", None)
    store.create("bob", "ed25519", None)
    alice_dir, bob_dir = store.identities_dir / "alice", store.identities_dir / "bob"
    (alice_dir / "secret.pem").write_bytes((bob_dir / "secret.pem").read_bytes())
    with pytest.raises(StoreError, match="does not match"):
        store.signer("alice", no_passphrase)


def test_concurrent_creation_of_one_name(store, registry):
    signers = [Signer.generate("ed25519" if i % 2 else "nostr", registry) for i in range(8)]
    barrier = threading.Barrier(len(signers))
    outcomes: list[object] = [None] * len(signers)

    def worker(index):
        barrier.wait()
        try:
            outcomes[index] = store.add("shared", signers[index], None)
        except Exception as exc:  # noqa: BLE001 - collected and checked below
            outcomes[index] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(signers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [i for i, o in enumerate(outcomes) if not isinstance(o, Exception)]
    losers = [o for o in outcomes if isinstance(o, Exception)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, StoreError) for o in losers), losers
    [winner] = winners
    record = store.get("shared")
    assert record.key_id == signers[winner].key_id
    assert store.signer("shared", no_passphrase).secret == signers[winner].secret
    assert [p.name for p in store.identities_dir.iterdir()] == ["shared"]  # no temp folders left


# -------------------------------------------------------------- signer_from_text


@pytest.mark.parametrize("alg", ["ed25519", "nostr"])
def test_signer_from_pem(registry, alg):
    signer = Signer.generate(alg, registry)
    plain = signer.alg.secret_to_pem(signer.secret, None).decode()
    assert (
        signer_from_text(plain, alg=None, passphrase=no_passphrase, registry=registry).key_id
        == signer.key_id
    )
    assert signer_from_text(
        "\n" + plain + "\n", alg=alg, passphrase=no_passphrase, registry=registry
    ).secret == (signer.secret)
    encrypted = signer.alg.secret_to_pem(signer.secret, b"pw").decode()
    assert (
        signer_from_text(encrypted, alg=None, passphrase=lambda: b"pw", registry=registry).key_id
        == signer.key_id
    )
    with pytest.raises(PassphraseError):
        signer_from_text(encrypted, alg=None, passphrase=lambda: b"nope", registry=registry)
    with pytest.raises(PassphraseError):
        signer_from_text(encrypted, alg=None, passphrase=lambda: None, registry=registry)


def test_signer_from_pem_of_the_other_alg(registry):
    signer = Signer.generate("ed25519", registry)
    pem = signer.alg.secret_to_pem(signer.secret, None).decode()
    with pytest.raises(KeyFormatError):
        signer_from_text(pem, alg="nostr", passphrase=no_passphrase, registry=registry)


def test_signer_from_foreign_pem(registry):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyFormatError, match="no key algorithm"):
        signer_from_text(pem.decode(), alg=None, passphrase=no_passphrase, registry=registry)


def test_signer_from_nsec(registry):
    signer = Signer.generate("nostr", registry)
    nsec = nip19.encode("nsec", signer.secret)
    assert (
        signer_from_text(nsec, alg=None, passphrase=no_passphrase, registry=registry).key_id
        == signer.key_id
    )
    assert signer_from_text(
        f"  {nsec}\n", alg="nostr", passphrase=no_passphrase, registry=registry
    ).secret == (signer.secret)
    with pytest.raises(KeyFormatError):
        signer_from_text(
            nsec[:-1] + ("q" if nsec[-1] != "q" else "p"),
            alg=None,
            passphrase=no_passphrase,
            registry=registry,
        )


def test_signer_from_ncryptsec_spec_vector(registry):
    signer = signer_from_text(
        NIP49_NCRYPTSEC, alg=None, passphrase=lambda: NIP49_PASSWORD.encode(), registry=registry
    )
    assert signer.alg.name == "nostr"
    assert signer.secret.hex() == NIP49_SECRET
    with pytest.raises(PassphraseError):
        signer_from_text(
            NIP49_NCRYPTSEC, alg=None, passphrase=lambda: b"not nostr", registry=registry
        )
    with pytest.raises(PassphraseError):
        signer_from_text(NIP49_NCRYPTSEC, alg=None, passphrase=lambda: None, registry=registry)


def test_ncryptsec_export_round_trip(store):
    store.create("alice", "nostr", None)
    text = store.export_secret("alice", "ncryptsec", no_passphrase, export_passphrase=b"pw2")
    assert text.startswith("ncryptsec1")
    signer = signer_from_text(text, alg=None, passphrase=lambda: b"pw2", registry=store.registry)
    assert signer.key_id == store.get("alice").key_id
    with pytest.raises(PassphraseError, match="UTF-8"):
        store.export_secret("alice", "ncryptsec", no_passphrase, export_passphrase=b"\xff")
    store.create("bob", "ed25519", None)
    with pytest.raises(KeyFormatError):
        store.export_secret("bob", "ncryptsec", no_passphrase, export_passphrase=b"pw2")


@pytest.mark.parametrize("alg", ["ed25519", "nostr"])
def test_signer_from_hex(registry, alg):
    signer = Signer.generate(alg, registry)
    text = signer.secret.hex()
    assert (
        signer_from_text(text, alg=alg, passphrase=no_passphrase, registry=registry).key_id
        == signer.key_id
    )
    assert (
        signer_from_text(text.upper(), alg=alg, passphrase=no_passphrase, registry=registry).secret
        == signer.secret
    )
    with pytest.raises(KeyFormatError) as caught:
        signer_from_text(text, alg=None, passphrase=no_passphrase, registry=registry)
    assert "--alg" in caught.value.hint


@pytest.mark.parametrize(
    "text, alg",
    [
        ("", "ed25519"),
        ("zz" * 32, "ed25519"),
        ("ab" * 31, "ed25519"),
        ("00" * 32, "nostr"),  # zero is not a secp256k1 secret
        ("ff" * 32, "nostr"),  # >= n
        ("hello", "nostr"),
        ("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----", None),
        ("nsec1", None),
        ("ncryptsec1qqqq", None),
    ],
)
def test_signer_from_bad_text(registry, text, alg):
    with pytest.raises(KeyFormatError):
        signer_from_text(text, alg=alg, passphrase=lambda: b"pw", registry=registry)


def test_signer_from_text_unknown_alg(registry):
    with pytest.raises(UnknownNameError):
        signer_from_text("ab" * 32, alg="rsa", passphrase=no_passphrase, registry=registry)
