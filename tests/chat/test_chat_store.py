"""ChatStore: bodies sealed to their row, schema versions, the store key, two processes at once."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kez_core.chat.store import KEY_FILE, ChatStore, load_store_key, open_body, seal_body
from kez_core.errors import DecodeError, PassphraseError, StoreError

KEY = bytes(range(32))


@given(st.binary(max_size=200), st.text(max_size=20))
def test_open_body_answers_any_blob_with_a_body_or_a_decode_error(blob, row):
    try:
        body = open_body(KEY, row, blob)
    except DecodeError:
        return
    assert isinstance(body, dict)


@given(
    st.dictionaries(
        st.text(max_size=10),
        st.one_of(st.text(max_size=30), st.integers(), st.booleans()),
        max_size=5,
    ),
    st.text(min_size=1, max_size=20),
)
def test_a_sealed_body_opens_only_on_its_own_row(body, row):
    blob = seal_body(KEY, row, body)
    assert open_body(KEY, row, blob) == body
    with pytest.raises(DecodeError):
        open_body(KEY, row + "x", blob)
    with pytest.raises(DecodeError):
        open_body(bytes(32), row, blob)


def test_a_store_from_a_newer_kez_is_refused_untouched(tmp_path):
    path = tmp_path / "chat.db"
    ChatStore(path, KEY).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer kez"):
        ChatStore(path, KEY)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 99


def test_the_store_key_is_wrapped_with_the_passphrase(tmp_path):
    key = load_store_key(tmp_path, lambda: b"correct horse", encrypted=True)
    assert len(key) == 32
    pem = (tmp_path / KEY_FILE).read_bytes()
    assert b"ENCRYPTED" in pem and key not in pem
    assert oct((tmp_path / KEY_FILE).stat().st_mode & 0o777) == "0o600"
    assert load_store_key(tmp_path, lambda: b"correct horse", encrypted=True) == key
    with pytest.raises(PassphraseError):
        load_store_key(tmp_path, lambda: b"wrong", encrypted=True)


def _writer(path: str, who: str, n: int) -> None:
    store = ChatStore(path, KEY)
    for i in range(n):
        key = f"{who}-{i}"
        store.add_outgoing(
            key, "ed25519:" + "a" * 64, "2026-01-01T00:00:00Z", {"kind": "text", "text": key}
        )
        store.add_incoming(
            f"in-{key}",
            "ed25519:" + "b" * 64,
            "2026-01-01T00:00:00Z",
            {"kind": "text", "text": key},
            stranger=True,
        )
        store.set_state(key, "sent", only_from=("sending",))
    store.close()


def test_two_processes_write_one_store_at_once(tmp_path):
    path = str(tmp_path / "chat.db")
    ChatStore(path, KEY).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, who, 40)) for who in ("p1", "p2")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = ChatStore(path, KEY)
    out = store.history("ed25519:" + "a" * 64)
    assert len(out) == 80 and {e.state for e in out} == {"sent"}
    assert {e.body["text"] for e in out} == {f"{w}-{i}" for w in ("p1", "p2") for i in range(40)}
    assert len(store.pending_acks()["ed25519:" + "b" * 64]) == 80
    store.close()


def test_a_failed_write_keeps_what_was_stored(tmp_path):
    store = ChatStore(tmp_path / "chat.db", KEY)
    store.add_outgoing("k1", "p", "2026-01-01T00:00:00Z", {"kind": "text", "text": "kept"})
    with pytest.raises(StoreError):
        store.add_outgoing("k1", "p", "2026-01-01T00:00:01Z", {"kind": "text", "text": "clash"})
    assert [e.body["text"] for e in store.history("p")] == ["kept"]
    store.close()
    assert not os.path.exists(tmp_path / "chat.db-journal")


def test_a_window_of_a_history(tmp_path):
    store = ChatStore(tmp_path / "chat.db", KEY)
    with store.batch():
        for i in range(30):
            store.add_incoming(
                f"m{i}",
                "peer",
                f"2026-12-06T10:{i:02d}:00Z",
                {"kind": "text", "text": str(i)},
                stranger=False,
                ack=False,
            )
    store.add_incoming(
        "other",
        "someone else",
        "2026-12-06T11:00:00Z",
        {"kind": "text", "text": "x"},
        stranger=True,
    )
    assert store.history_length("peer") == 30 and store.history_length("nobody") == 0
    every = store.history("peer", mark_read=False)
    assert [e.key for e in store.history("peer", mark_read=False, start=25)] == [
        e.key for e in every[25:]
    ]
    assert [e.key for e in store.history("peer", mark_read=False, start=10, limit=5)] == [
        e.key for e in every[10:15]
    ]
    assert store.history("peer", mark_read=False, start=40) == []
    assert store.history("peer", mark_read=False, limit=0) == []
    # reading the latest window marks the conversation read
    store.history("peer", start=28)
    assert store.conversations()[-1]["unread"] == 0 or store.conversations()[0]["unread"] == 0
    assert {r["peer"]: r["unread"] for r in store.conversations()}["peer"] == 0
    store.close()
