"""Local input that used to end in a traceback (issue 13 §7): each gets a clear error or is cleaned up."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import time
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kez_core.builtins import bip340, ed25519, encodings
from kez_core.errors import DecodeError, PassphraseError, StoreError
from kez_core.keys import Signer
from kez_core.keystore import Keystore, passphrase_bytes
from kez_core.registry import Registry
from kez_core.timefmt import MAX_DURATION, parse_duration


@pytest.fixture(scope="module")
def registry():
    return Registry(plugins=[ed25519, bip340, encodings], entry_points=False, env={})


def home() -> Path:
    return Path(os.environ["KEZ_HOME"])


# ------------------------------------------------------------ non-UTF-8 passphrases


def test_passphrase_that_is_not_utf8_is_a_typed_error():
    with pytest.raises(PassphraseError, match="not valid UTF-8"):
        passphrase_bytes("pass\udcff", source="KEZ_PASSPHRASE")
    assert passphrase_bytes("pässe", source="x") == "pässe".encode()


@pytest.mark.parametrize("command", [["identity", "new"], ["claim", "create", "dns:example.org"]])
def test_non_utf8_kez_passphrase(kez, monkeypatch, command):
    if command[0] == "claim":
        monkeypatch.setenv("KEZ_PASSPHRASE", "pw")
        kez("identity", "new")
    monkeypatch.setenv("KEZ_PASSPHRASE", "pw\udcff")  # what a Latin-1 environment gives Python
    before = sorted(p.name for p in home().rglob("*"))
    code, _, err = kez(*command)
    assert code == 4 and "KEZ_PASSPHRASE is not valid UTF-8" in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in home().rglob("*")) == before


# ------------------------------------------------------------------ long durations


@pytest.mark.parametrize("text", ["99999y", "1001y", "365001d", "999999999999s"])
def test_duration_past_the_maximum_says_the_maximum(text):
    with pytest.raises(DecodeError, match="maximum, 1000y"):
        parse_duration(text)


def test_the_maximum_duration_itself_is_accepted():
    assert parse_duration("1000y") == MAX_DURATION == timedelta(days=365000)


@pytest.mark.parametrize(
    "command",
    [
        ["sigchain", "add", "dns:example.org", "--expires", "99999y"],
        ["claim", "create", "dns:example.org", "--expires", "99999y"],
        ["sigchain", "add-inbox", "--expires-in", "99999y"],
    ],
)
def test_cli_refuses_a_duration_past_the_maximum(kez, command):
    kez("identity", "new", "--no-passphrase")
    kez("sigchain", "init")
    code, _, err = kez(*command)
    assert code == 3 and "1000y" in err, err


# ------------------------------------------------------------- damaged identity.json


@pytest.mark.parametrize(
    "content, fault",
    [
        ('{"name": 5}', "'alg' is missing"),
        ("[1, 2]", "holds a list, not an object"),
        ('"text"', "holds a string"),
        ("null", "holds null"),
        (
            '{"alg": 5, "key_id": "x", "created_at": "t", "encrypted": false}',
            "'alg' must be a string, not a number",
        ),
        (
            '{"alg": "ed25519", "key_id": "x", "created_at": "t", "encrypted": "no"}',
            "'encrypted' must be true or false",
        ),
        (
            '{"alg": "ed25519", "key_id": ["x"], "created_at": "t", "encrypted": false}',
            "'key_id' must be a string",
        ),
        (
            '{"alg": "ed25519", "key_id": "x", "created_at": "t", "encrypted": false, "identity_id": 7}',
            "'identity_id' must be a string",
        ),
        (b"\xff\xfe{}", "unreadable"),
    ],
)
def test_identity_file_of_the_wrong_shape(tmp_path, registry, content, fault):
    store = Keystore(tmp_path / "home", registry)
    store.create("alice", "ed25519", None)
    good = store.create("bob", "ed25519", None)
    path = store.identities_dir / "alice" / "identity.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(
        StoreError, match="identity file .*alice.*identity.json is unreadable"
    ) as caught:
        store.get("alice")
    assert fault in caught.value.message
    assert [r.name for r in store.list()] == ["bob"]  # the other identity still works
    assert store.get("bob") == good
    records, broken = store.scan()
    assert [r.name for r in records] == ["bob"] and fault in broken[0].message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=12,
)
record_like = st.fixed_dictionaries(
    {},
    optional={
        "alg": json_values | st.just("ed25519"),
        "key_id": json_values | st.just("ed25519:" + "ab" * 32),
        "created_at": json_values | st.just("2026-01-01T00:00:00Z"),
        "encrypted": json_values,
        "identity_id": json_values,
    },
)


@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.one_of(json_values, record_like))
def test_any_identity_file_reads_as_a_record_or_a_store_error(tmp_path, registry, value):
    store = Keystore(tmp_path / "home", registry)
    folder = store.identities_dir / "x"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "identity.json").write_text(json.dumps(value))
    try:
        record = store.get("x")
    except StoreError as exc:
        assert "identity.json is unreadable" in exc.message
        assert store.list() == []
    else:
        assert all(
            isinstance(v, str)
            for v in (record.alg, record.key_id, record.created_at, record.identity_id)
        )
        assert isinstance(record.encrypted, bool)


def test_cli_lists_the_good_identities_and_names_the_damaged_one(kez):
    kez("identity", "new", "--name", "alice", "--no-passphrase")
    kez("identity", "new", "--name", "bob", "--no-passphrase")
    (home() / "identities" / "alice" / "identity.json").write_text('{"name": 5}')
    code, out, err = kez("identity", "list", "--json")
    assert code == 0 and [r["name"] for r in json.loads(out)] == ["bob"]
    assert "alice" in err and "'alg' is missing" in err
    code, _, err = kez("identity", "show", "alice")
    assert code == 4 and "identity.json is unreadable" in err and "Traceback" not in err
    assert kez("claim", "create", "dns:example.org", "--identity", "bob")[0] == 0


# ----------------------------------------------------------------- umask 000


@pytest.fixture
def open_umask():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_keystore_folders_are_private_under_umask_000(kez, tmp_path, monkeypatch, open_umask):
    monkeypatch.setenv("KEZ_HOME", str(tmp_path / "fresh" / "home"))
    assert kez("identity", "new", "--no-passphrase")[0] == 0
    assert kez("sigchain", "init", "--new-recovery", str(tmp_path / "r.pem"))[0] == 0
    assert kez("sigchain", "add-inbox")[0] == 0
    folders = [home(), *(p for p in home().rglob("*") if p.is_dir())]
    assert {p.name for p in folders} >= {"home", "identities", "default", "chains", "inbox"}
    for folder in folders:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for key_file in [*home().rglob("*.pem"), tmp_path / "r.pem"]:
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, key_file
    exported = tmp_path / "chain.jsonl"
    assert kez("sigchain", "export", str(exported))[0] == 0
    monkeypatch.setenv("KEZ_HOME", str(tmp_path / "other"))
    assert kez("sigchain", "import", str(exported))[0] == 0  # a chain is the first thing here
    for folder in [home(), home() / "chains"]:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


# ------------------------------------------------------- a killed `identity new`


def leftover(store: Keystore, name: str, *, age: float) -> Path:
    """What `identity new` killed before its rename leaves: a temp folder with an unencrypted secret."""
    folder = store.identities_dir / f".new-{name}-0123456789ab"
    folder.mkdir(parents=True)
    signer = Signer.generate("ed25519", store.registry)
    (folder / "secret.pem").write_bytes(signer.alg.secret_to_pem(signer.secret, None))
    (folder / ".lock").touch()
    then = time.time() - age
    for path in (folder / "secret.pem", folder / ".lock", folder):
        os.utime(path, (then, then))
    return folder


def test_a_killed_identity_new_is_cleaned_up_at_the_next_open(tmp_path, registry):
    store = Keystore(tmp_path / "home", registry)
    store.create("alice", "ed25519", None)
    stale = leftover(store, "bob", age=3600)
    killed_write = store.identities_dir / "alice" / ".secret.pem.0123456789ab.tmp"
    killed_write.write_bytes(b"half a key")
    os.utime(killed_write, (time.time() - 3600,) * 2)
    (store.identities_dir / "alice" / "inbox").mkdir()
    killed_inbox = store.identities_dir / "alice" / "inbox" / ".ab12.pem.0123456789ab.tmp"
    killed_inbox.write_bytes(b"half an inbox key")
    os.utime(killed_inbox, (time.time() - 3600,) * 2)
    fresh_write = store.identities_dir / "alice" / ".identity.json.0123456789ab.tmp"
    fresh_write.write_bytes(b"being written right now")
    assert [r.name for r in Keystore(tmp_path / "home", registry).list()] == ["alice"]
    assert not stale.exists()
    assert not killed_write.exists() and not killed_inbox.exists()
    assert fresh_write.exists()  # a write in progress is not touched
    assert sorted(p.name for p in store.identities_dir.iterdir()) == ["alice"]


def test_an_identity_being_created_right_now_is_left_alone(tmp_path, registry):
    store = Keystore(tmp_path / "home", registry)
    store.create("alice", "ed25519", None)
    live = leftover(store, "bob", age=3600)
    fd = os.open(live / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # its creator is alive and holds the lock
        Keystore(tmp_path / "home", registry).list()
        assert (live / "secret.pem").exists()
    finally:
        os.close(fd)
    young = leftover(store, "carol", age=0)  # just made, its creator not yet locked in
    (young / ".lock").unlink()
    Keystore(tmp_path / "home", registry).list()
    assert young.exists()
    Keystore(tmp_path / "home", registry).list()
    assert not live.exists()  # the lock is free now: its creator is gone


def test_identity_new_leaves_no_temp_folder_or_lock_behind(tmp_path, registry):
    store = Keystore(tmp_path / "home", registry)
    store.create("alice", "ed25519", b"pw")
    assert sorted(p.name for p in store.identities_dir.iterdir()) == ["alice"]
    assert sorted(p.name for p in (store.identities_dir / "alice").iterdir()) == [
        ".lock",
        "identity.json",
        "secret.pem",
    ]
