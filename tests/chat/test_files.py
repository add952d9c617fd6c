"""Files over messages (kez_core.chat.files): inline, chunked, out of order, resumed, corrupt, refused."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kez_core.chat import MessagingService, Route
from kez_core.chat.files import (
    FILE_MAX,
    FileRefused,
    chunk_size,
    envelope_text_length,
    legacy_chunk_size,
    largest_bucket,
    parse_chunk,
    parse_file,
    safe_name,
    save_file,
)
from kez_core.errors import KezError, SchemaError
from kez_core.keystore import Keystore
from kez_core.messaging.envelope import MAX_ENVELOPE_TEXT
from kez_core.protocols import ChannelContext


class Wire:
    name = "wire"
    options = ()

    def __init__(
        self, max_envelope: int = MAX_ENVELOPE_TEXT, fail_after: int | None = None
    ) -> None:
        self.sent: list[str] = []
        self.max_envelope = max_envelope
        self.fail_after = fail_after

    async def send(self, routing_id: str, envelope: bytes, ctx: ChannelContext) -> None:
        from kez_core.errors import EnvelopeTooLarge, TransportError

        if len(envelope) > self.max_envelope:
            raise EnvelopeTooLarge(f"{len(envelope)} > {self.max_envelope}")
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise TransportError("the wire is cut")
        self.sent.append(envelope.decode())


def service(person, **kw) -> MessagingService:
    store = Keystore(person["home"])
    return MessagingService(store, store.get(), lambda: None, **kw)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def chat(three):
    services = {name: service(p) for name, p in three.items()}
    yield services
    for s in services.values():
        s.close()


def send_file(chat, three, path, wire, progress=None):
    peer = run(chat["alice"].resolve_peer(three["bob"]["id"]))
    return run(
        chat["alice"].send_file(peer, path, [Route("wire", wire, ChannelContext())], progress)
    )


def make(tmp_path, size, name="data.bin"):
    path = tmp_path / name
    path.write_bytes(random.Random(size).randbytes(size))
    return path


def test_inline_round_trip_saves_the_file_and_acks(chat, three, tmp_path):
    path = make(tmp_path, 5000, "note.txt")
    wire = Wire()
    result = send_file(chat, three, path, wire)
    assert result.state == "sent" and len(wire.sent) == 1
    got = chat["bob"].receive(wire.sent[0])
    assert got.kind == "message" and got.file["state"] == "complete"
    saved = got.file["path"]
    assert open(saved, "rb").read() == path.read_bytes()
    assert saved.startswith(str(three["bob"]["home"]))
    _, [entry] = run(chat["bob"].history(three["alice"]["id"]))
    f = entry.to_json()["file"]
    assert (f["name"], f["size"], f["sha256"], f["state"], f["path"]) == (
        "note.txt",
        5000,
        hashlib.sha256(path.read_bytes()).hexdigest(),
        "complete",
        saved,
    )
    assert chat["bob"].store.pending_acks() == {three["alice"]["id"]: [got.message.id]}
    _, [mine] = run(chat["alice"].history(three["bob"]["id"]))
    assert mine.to_json()["file"]["name"] == "note.txt" and mine.state == "sent"


def test_chunked_out_of_order_and_duplicated_pointer_first(chat, three, tmp_path):
    path = make(tmp_path, 300_000)
    wire = Wire()
    seen = []
    result = send_file(chat, three, path, wire, lambda n, m: seen.append((n, m)))
    assert result.state == "sent" and len(wire.sent) >= 4
    assert seen[-1][0] == seen[-1][1]
    pointer, chunks = wire.sent[-1], wire.sent[:-1]
    got = chat["bob"].receive(pointer)  # the pointer first: the person sees it, receiving 0/N
    assert got.kind == "message" and got.file["state"] == "receiving" and got.file["received"] == 0
    assert chat["bob"].store.pending_acks() == {}  # no ack until the file is whole
    order = list(chunks)
    random.Random(1).shuffle(order)
    for envelope in order[:-1]:
        assert chat["bob"].receive(envelope).file["state"] == "receiving"
    # a duplicate (a relay delivering twice) changes nothing: its index is known
    again = chat["bob"].receive(order[0])
    assert again.kind == "file_chunk" and again.file["received"] == len(chunks) - 1
    _, [entry] = run(chat["bob"].history(three["alice"]["id"]))
    assert entry.to_json()["file"]["received"] == len(chunks) - 1
    last = chat["bob"].receive(order[-1])
    assert last.file["state"] == "complete"
    assert open(last.file["path"], "rb").read() == path.read_bytes()
    assert list(chat["bob"].store.pending_acks().values()) == [[got.message.id]]
    _, [entry] = run(chat["bob"].history(three["alice"]["id"]))
    assert entry.to_json()["file"]["state"] == "complete"


def test_chunks_first_then_pointer_and_receiver_restart(chat, three, tmp_path):
    path = make(tmp_path, 250_000)
    wire = Wire()
    send_file(chat, three, path, wire)
    half = len(wire.sent) // 2
    for envelope in wire.sent[:half]:
        chat["bob"].receive(envelope)
    chat["bob"].close()  # the receiver restarts mid-transfer: a new service on the same store
    bob = service(three["bob"])
    try:
        for envelope in wire.sent[half:]:
            last = bob.receive(envelope)
        assert last.file["state"] == "complete"
        assert open(last.file["path"], "rb").read() == path.read_bytes()
    finally:
        bob.close()


def test_sender_restart_resumes_only_missing_chunks(chat, three, tmp_path):
    path = make(tmp_path, 400_000)
    cut = Wire(fail_after=2)
    first = send_file(chat, three, path, cut)
    assert first.state == "sending" and len(cut.sent) == 2
    chat["alice"].close()
    alice = service(three["alice"])
    chat["alice"] = alice
    rest = Wire()
    second = send_file(chat, three, path, rest)
    assert second.key == first.key and second.state == "sent"
    for envelope in cut.sent + rest.sent:
        last = chat["bob"].receive(envelope)
    assert last.file["state"] == "complete"
    assert open(last.file["path"], "rb").read() == path.read_bytes()
    _, entries = run(alice.history(three["bob"]["id"]))
    assert [e.key for e in entries] == [first.key]


def test_sha_mismatch_is_corrupt_and_nothing_saved(chat, three, tmp_path):
    from kez_core.chat.files import Chunk, Pointer, FileMeta, chunk_body, pointer_body

    data = os.urandom(120_000)
    meta = FileMeta("x.bin", len(data), "ab" * 32)  # not its hash
    transfer = "cd" * 32
    size = 60_000
    peer = run(chat["alice"].resolve_peer(three["bob"]["id"]))
    bodies = [chunk_body(Chunk(transfer, i, 2, data[i * size : (i + 1) * size])) for i in range(2)]
    bodies.append(pointer_body(Pointer(meta, transfer, 2, size)))
    for body, attachment in zip(bodies, [data[:size], data[size:], None], strict=True):
        [(_, _, envelope)] = chat["alice"]._seal(peer.chain, body, attachment=attachment)
        last = chat["bob"].receive(envelope)
    assert last.file["state"] == "corrupt" and last.file["path"] is None
    assert list(three["bob"]["home"].rglob("files/*")) == []
    assert chat["bob"].store.pending_acks() == {}


def test_over_ten_megabytes_is_refused_before_sending(chat, three, tmp_path):
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(FILE_MAX + 1)
    wire = Wire()
    with pytest.raises(FileRefused) as refused:
        send_file(chat, three, path, wire)
    assert refused.value.exit_code == 3 and wire.sent == []
    assert run(chat["alice"].history(three["bob"]["id"]))[1] == []


@pytest.mark.parametrize("max_envelope", [32 * 1024, MAX_ENVELOPE_TEXT, 256 * 1024])
def test_largest_chunk_fits_the_transport(chat, three, tmp_path, max_envelope):
    """nostr (32 KiB), nats and http (the largest envelope): every envelope of a chunked file fits."""
    path = make(tmp_path, 200_000)
    wire = Wire(max_envelope=max_envelope)
    result = send_file(chat, three, path, wire)
    assert result.state == "sent"
    assert max(len(e) for e in wire.sent) <= max_envelope
    bucket = largest_bucket(max_envelope)
    assert envelope_text_length(bucket) <= max_envelope
    assert max(len(e) for e in wire.sent) == envelope_text_length(bucket)  # the room is used


def test_chunk_size_arithmetic():
    assert largest_bucket(32 * 1024) == 16 * 1024
    assert largest_bucket(MAX_ENVELOPE_TEXT) == 128 * 1024
    assert (
        chunk_size(16 * 1024, 1000) == 16 * 1024 - 1002
    )  # JSON, "\n", the bytes; the padding marker
    assert legacy_chunk_size(16 * 1024, 1000) == (16 * 1024 - 1001) // 4 * 3
    with pytest.raises(FileRefused):
        largest_bucket(100)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\win.ini", "win.ini"),
        (".bashrc", "bashrc"),
        ("a\x1b[31mred\x00.txt", "a_[31mred_.txt"),
        ("evil\u202egnp.exe", "evil_gnp.exe"),
        ("..", "file"),
        ("", "file"),
        ("/", "file"),
    ],
)
def test_hostile_names_are_sanitised(name, expected):
    assert safe_name(name) == expected


def test_saving_never_overwrites(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"mine")
    first = save_file(tmp_path, "../a.txt", b"one")
    second = save_file(tmp_path, "a.txt", b"two")
    assert (tmp_path / "a.txt").read_bytes() == b"mine"
    assert first.name == "a (1).txt" and second.name == "a (2).txt"
    assert (
        first.parent == tmp_path
        and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["kind", "name", "size", "sha256", "mime", "data", "transfer", "index", "count"]
        ),
        json_values,
        max_size=9,
    )
)
def test_file_decoders_answer_any_body_with_a_value_or_schema_error(body):
    for kind in ("file", "file_chunk"):
        candidate = {**body, "kind": kind}
        for parse in (parse_file, parse_chunk):
            try:
                parse(candidate)
            except SchemaError:
                pass


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=3000), st.integers(1, 500))
def test_chunk_and_pointer_bodies_round_trip(data, size):
    from kez_core.chat.files import (
        Chunk,
        FileMeta,
        Pointer,
        chunk_body,
        legacy_chunk_body,
        pointer_body,
    )

    count = -(-len(data) // size)
    sha = hashlib.sha256(data).hexdigest()
    pointer = Pointer(FileMeta("f.bin", len(data), sha), "0" * 64, count, size)
    assert parse_file(pointer_body(pointer)) == pointer
    for i in range(count):
        chunk = Chunk("1" * 64, i, count, data[i * size : (i + 1) * size])
        assert parse_chunk(chunk_body(chunk), chunk.data) == chunk
        assert parse_chunk(legacy_chunk_body(chunk)) == chunk  # the earlier form is still read


def test_a_resent_pointer_adds_no_second_entry(chat, three, tmp_path):
    """The sender resumed after its pointer had arrived (it crashed before recording that)."""
    path = make(tmp_path, 200_000)
    wire = Wire()
    result = send_file(chat, three, path, wire)
    for envelope in wire.sent:
        chat["bob"].receive(envelope)
    peer = run(chat["alice"].resolve_peer(three["bob"]["id"]))
    from kez_core.chat.files import Transfers

    [(transfer,)] = chat["alice"].store._read("SELECT id FROM transfers")
    [entry] = run(chat["alice"].history(three["bob"]["id"]))[1]
    pointer_body = {
        "kind": "file",
        **{k: entry.body["file"][k] for k in ("name", "size", "sha256")},
        "transfer": {
            "id": transfer,
            "count": entry.body["file"]["count"],
            "chunk_size": Transfers(chat["alice"].store).get(peer.identity, transfer, "out")[
                "chunk_size"
            ],
        },
    }
    [(_, _, again)] = chat["alice"]._seal(peer.chain, pointer_body)
    got = chat["bob"].receive(again)
    assert got.kind == "file_chunk" and got.file["state"] == "complete"
    assert len(run(chat["bob"].history(three["alice"]["id"]))[1]) == 1
    assert sum(len(v) for v in chat["bob"].store.pending_acks().values()) == 1
    assert result.state == "sent"


def test_a_corrupt_inline_file_is_not_saved_nor_acked(chat, three):
    from kez_core.chat.files import FileMeta, inline_body

    peer = run(chat["alice"].resolve_peer(three["bob"]["id"]))
    [(_, _, envelope)] = chat["alice"]._seal(
        peer.chain, inline_body(FileMeta("a.txt", 3, "00" * 32), b"abc")
    )
    got = chat["bob"].receive(envelope)
    assert got.file["state"] == "corrupt" and got.file["path"] is None
    assert chat["bob"].store.pending_acks() == {}
    assert list(three["bob"]["home"].rglob("files/*")) == []


def test_a_version_1_store_moves_to_version_2_and_keeps_its_messages(tmp_path):
    import sqlite3

    from kez_core.chat.store import MIGRATIONS, ChatStore, seal_body

    key = os.urandom(32)
    db = sqlite3.connect(tmp_path / "chat.db")
    for sql in MIGRATIONS[0]:
        db.execute(sql)
    db.execute(
        "INSERT INTO messages VALUES ('k', 'p', 'in', 'delivered', 't', 0, 1, ?, 1)",
        (seal_body(key, "k", {"kind": "text", "text": "old"}),),
    )
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with ChatStore(tmp_path / "chat.db", key) as store:
        assert [e.body["text"] for e in store.history("p")] == ["old"]
        assert store._read("SELECT count(*) FROM in_chunks") == [(0,)]
    assert (
        sqlite3.connect(tmp_path / "chat.db").execute("PRAGMA user_version").fetchone()[0] == 4
    )  # and on to version 4 (spooled chunks)


def test_chunks_go_to_a_spool_file_sealed_and_it_goes_once_the_file_is_saved(chat, three, tmp_path):
    from kez_core.chat.files import Transfers

    path = make(tmp_path, 300_000)
    wire = Wire()
    send_file(chat, three, path, wire)
    bob = chat["bob"]
    for envelope in wire.sent[:2]:  # two chunks, not the last one nor the pointer
        bob.receive(envelope)
    rows = bob.store._read("SELECT peer, transfer, idx, data, at FROM in_chunks ORDER BY at")
    assert len(rows) == 2 and all(data == b"" and at is not None for *_, data, at in rows)
    spool = Transfers(bob.store).spool_path(rows[0][0], rows[0][1])
    assert spool.is_file() and spool.stat().st_mode & 0o777 == 0o600
    raw = spool.read_bytes()
    assert path.read_bytes()[:1000] not in raw  # sealed at rest
    for envelope in wire.sent[2:]:
        last = bob.receive(envelope)
    assert (
        last.file["state"] == "complete"
        and open(last.file["path"], "rb").read() == path.read_bytes()
    )
    assert not spool.exists() and bob.store._read("SELECT count(*) FROM in_chunks") == [(0,)]


def test_a_failed_spool_fsync_commits_no_chunk_and_records_no_id(
    chat, three, tmp_path, monkeypatch
):
    """Crash safety: a chunk's row commits only after its bytes are on disk, and its message id
    goes to the replay store only after that: here the fsync fails, so the envelope opens again."""
    import kez_core.chat.files as files
    from kez_core.errors import StoreError

    path = make(tmp_path, 300_000)
    wire = Wire()
    send_file(chat, three, path, wire)
    bob = chat["bob"]

    def broken(_path):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files, "_fsync", broken)
    with pytest.raises(StoreError):
        bob.receive_many(wire.sent[:1])
    assert bob.store._read("SELECT count(*) FROM in_chunks") == [(0,)]
    monkeypatch.undo()
    [again] = bob.receive_many(wire.sent[:1])  # not a replay: nothing was recorded
    assert again.kind == "file_chunk" and bob.store._read("SELECT count(*) FROM in_chunks") == [
        (1,)
    ]
    for result in bob.receive_many(wire.sent[1:]):
        last = result
    assert (
        last.file["state"] == "complete"
        and open(last.file["path"], "rb").read() == path.read_bytes()
    )


def test_chunks_of_the_earlier_base64_form_still_assemble(chat, three, tmp_path):
    """A sender from before attachments (or a store mid-transfer across the upgrade) still works."""
    from kez_core.chat.files import Chunk, FileMeta, Pointer, legacy_chunk_body, pointer_body

    data = os.urandom(150_000)
    meta = FileMeta("old.bin", len(data), hashlib.sha256(data).hexdigest())
    transfer, size = "ef" * 32, 60_000
    peer = run(chat["alice"].resolve_peer(three["bob"]["id"]))
    for i in range(3):
        [(_, _, envelope)] = chat["alice"]._seal(
            peer.chain, legacy_chunk_body(Chunk(transfer, i, 3, data[i * size : (i + 1) * size]))
        )
        chat["bob"].receive(envelope)
    [(_, _, envelope)] = chat["alice"]._seal(
        peer.chain, pointer_body(Pointer(meta, transfer, 3, size))
    )
    last = chat["bob"].receive(envelope)
    assert last.file["state"] == "complete" and open(last.file["path"], "rb").read() == data


def test_nats_sized_envelopes_carry_half_megabyte_chunks(chat, three, tmp_path):
    from kez_core.messaging.envelope import MAX_ATTACHMENT_ENVELOPE_TEXT
    from kez_transport_nats.transport import NatsTransport

    path = make(tmp_path, 2 * 1024 * 1024 + 5)
    wire = Wire(max_envelope=NatsTransport().max_envelope)
    assert NatsTransport().max_envelope == MAX_ATTACHMENT_ENVELOPE_TEXT
    send_file(chat, three, path, wire)
    assert len(wire.sent) == 5 + 1  # 2 MiB in 511 KiB chunks, then the pointer
    assert max(len(e) for e in wire.sent) == envelope_text_length(
        largest_bucket(MAX_ATTACHMENT_ENVELOPE_TEXT)
    )
    for result in chat["bob"].receive_many(wire.sent[::-1]):  # any order, one batch
        last = result
    assert (
        last.file["state"] == "complete"
        and open(last.file["path"], "rb").read() == path.read_bytes()
    )


def test_a_file_whose_chunks_all_came_here_is_assembled_without_reading_its_spool(
    chat, three, tmp_path, monkeypatch
):
    from kez_core.chat import files

    path = make(tmp_path, 300_000)
    wire = Wire()
    send_file(chat, three, path, wire)

    def no_spool(*args, **kwargs):
        raise AssertionError("the spool was read back")

    monkeypatch.setattr(files.Transfers, "pieces", no_spool)
    for envelope in reversed(wire.sent):  # the pointer first, then the chunks last to first
        last = chat["bob"].receive(envelope)
    assert last.file["state"] == "complete"
    assert open(last.file["path"], "rb").read() == path.read_bytes()
    assert chat["bob"].held_chunks.total == 0
    spools = list((three["bob"]["home"]).rglob("transfers/*"))
    assert all(p.name.endswith(".gone") for p in spools)  # renamed away, removed in the background


def test_a_restarted_receiver_assembles_from_the_spool(chat, three, tmp_path, monkeypatch):
    from kez_core.chat import files

    path = make(tmp_path, 300_000)
    wire = Wire()
    send_file(chat, three, path, wire)
    read: list[str] = []
    pieces = files.Transfers.pieces

    def spy(self, *args):
        read.append("spool")
        return pieces(self, *args)

    monkeypatch.setattr(files.Transfers, "pieces", spy)
    chat["bob"].receive(wire.sent[0])
    chat["bob"].close()
    bob = service(three["bob"])  # the first chunk is in the spool only
    try:
        for envelope in wire.sent[1:]:
            last = bob.receive(envelope)
    finally:
        bob.close()
    assert last.file["state"] == "complete" and read == ["spool"]
    assert open(last.file["path"], "rb").read() == path.read_bytes()


def test_a_chunk_repeated_after_its_file_was_saved_changes_nothing_and_costs_no_replay_commit(
    chat, three, tmp_path
):
    path = make(tmp_path, 300_000)
    wire = Wire()
    send_file(chat, three, path, wire)
    bob = chat["bob"]
    answers = bob.receive_many(wire.sent)
    assert answers[-1].file["state"] == "complete"
    saved = answers[-1].file["path"]
    recorded = bob.replay._db.execute("SELECT count(*) FROM kez_seen_messages").fetchone()[0]
    assert recorded == 1  # the pointer's id; the chunks' are not recorded
    for envelope in wire.sent[:-1]:  # every chunk again, one by one and as a batch
        again = bob.receive(envelope)
        assert again.kind == "file_chunk" and again.file["state"] == "complete"
    assert all(a.kind == "file_chunk" for a in bob.receive_many(wire.sent[:-1]))
    with pytest.raises(KezError):  # the pointer is a message like any other: a replay
        bob.receive(wire.sent[-1])
    assert open(saved, "rb").read() == path.read_bytes()
    _, entries = run(bob.history(three["alice"]["id"]))
    assert len(entries) == 1 and list(bob.store.pending_acks().values()) == [[entries[0].key]]
