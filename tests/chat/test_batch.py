"""Backlogs with group commits (kez_core.chat.batch, ChatStore.batch): the same stored result as
one message at a time, fewer commits, and a bad envelope spoils nothing around it.

Envelopes move through the in-memory wire of test_chat_service; the benchmark
(benchmarks/messaging_e2e.py) runs the same helpers through a real nats-server.
"""

from __future__ import annotations

import asyncio

import pytest
from test_chat_service import Wire, route, service

from kez_core.chat.batch import ACK_IDS_MAX
from kez_core.errors import KezError, StoreError
from kez_core.messaging import EnvelopeError, MessageRefused


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def chat(three):
    services = {name: service(p) for name, p in three.items()}
    yield services
    for s in services.values():
        s.close()


def texts(n):
    return [f"message {i:04d}" for i in range(n)]


def test_a_backlog_goes_sent_stored_acked_delivered_in_order(chat, three):
    alice, bob = chat["alice"], chat["bob"]
    peer = run(alice.resolve_peer(three["bob"]["id"]))
    wire = Wire()
    results = run(alice.send_texts(peer, texts(150), route(wire), window=64))
    assert [r.state for r in results] == ["sent"] * 150 and len(wire.sent) == 150

    got = bob.receive_many([envelope for _, envelope in wire.sent])
    assert [g.kind for g in got] == ["message"] * 150 and all(g.sender_checked for g in got)
    _, entries = run(bob.history(three["alice"]["id"]))
    assert [e.body["text"] for e in entries] == texts(150)

    acks = Wire()
    done = run(bob.flush_acks_batched(route(acks)))
    assert len(done[three["alice"]["id"]]) == 150 and bob.store.pending_acks() == {}
    assert len(acks.sent) == 2  # 100 ids, then 50: the format allows 1 to 100 per ack
    assert ACK_IDS_MAX == 100

    applied = alice.receive_many([envelope for _, envelope in acks.sent])
    assert sorted(k for a in applied for k in a.delivered) == sorted(r.key for r in results)
    _, mine = run(alice.history(three["bob"]["id"]))
    assert [(e.body["text"], e.state) for e in mine] == [(t, "delivered") for t in texts(150)]


def test_bad_envelopes_in_a_batch_are_answered_and_the_rest_stored(chat, three):
    alice, bob = chat["alice"], chat["bob"]
    peer = run(alice.resolve_peer(three["bob"]["id"]))
    wire = Wire()
    run(alice.send_texts(peer, texts(3), route(wire)))
    envelopes = [e for _, e in wire.sent]
    batch = [envelopes[0], "kez:e1:AAAA", envelopes[1], envelopes[0], envelopes[2]]
    got = bob.receive_many(batch)
    assert isinstance(got[1], EnvelopeError)
    assert isinstance(got[3], MessageRefused) and got[3].reason == "replay"
    assert [g.kind for g in (got[0], got[2], got[4])] == ["message"] * 3
    assert isinstance(
        bob.receive_many([envelopes[1]])[0], MessageRefused
    )  # already seen, next batch too
    _, entries = run(bob.history(three["alice"]["id"]))
    assert [e.body["text"] for e in entries] == texts(3)
    assert len(bob.store.pending_acks()[three["alice"]["id"]]) == 3


def test_a_failed_backlog_stays_sending_and_its_acks_stay_queued(chat, three):
    alice, bob = chat["alice"], chat["bob"]
    peer = run(alice.resolve_peer(three["bob"]["id"]))
    results = run(alice.send_texts(peer, texts(5), route(Wire(fail=True)), window=2))
    assert [r.state for r in results] == ["sending"] * 5
    _, mine = run(alice.history(three["bob"]["id"]))
    assert [(e.body["text"], e.state) for e in mine] == [(t, "sending") for t in texts(5)]

    wire = Wire()
    run(alice.send_texts(peer, ["again"], route(wire)))
    bob.receive_many([e for _, e in wire.sent])
    assert run(bob.flush_acks_batched(route(Wire(fail=True)))) == {}
    assert len(bob.store.pending_acks()[three["alice"]["id"]]) == 1


def test_an_ack_already_back_is_not_moved_back_to_sent(chat, three):
    """An ack can overtake the end of `send_texts` (a fast peer): states only go forward."""
    alice, bob = chat["alice"], chat["bob"]
    peer = run(alice.resolve_peer(three["bob"]["id"]))

    class Echo(Wire):
        async def send(
            self, routing_id, envelope, ctx
        ):  # bob receives and acks before send returns
            await super().send(routing_id, envelope, ctx)
            bob.receive_many([envelope.decode()])
            acks = Wire()
            await bob.flush_acks_batched(route(acks))
            alice.receive_many([e for _, e in acks.sent])

    [result] = run(alice.send_texts(peer, ["quick"], route(Echo())))
    assert result.state == "delivered"


def test_store_batch_is_one_transaction_and_a_failing_write_undoes_only_itself(chat, three):
    store = chat["bob"].store
    with store.batch():
        store.add_incoming(
            "a" * 64,
            three["alice"]["id"],
            "2026-01-01T00:00:00Z",
            {"kind": "text", "text": "one"},
            stranger=False,
        )
        store.add_contact("kept", three["alice"]["id"])
        with pytest.raises(StoreError):
            store.add_contact(
                "kept", three["carol"]["id"]
            )  # a second contact of that name: refused
        with pytest.raises(RuntimeError), store._write() as db:  # a write that fails half way
            db.execute(
                "INSERT INTO contacts VALUES ('half', ?, NULL, 0, '2026-01-01T00:00:00Z')",
                (three["carol"]["id"],),
            )
            raise RuntimeError("half way")
        assert store._db.in_transaction
    assert [c.name for c in store.contacts()] == [
        "kept"
    ]  # the failing writes undid their own part only
    assert [e.body["text"] for e in store.history(three["alice"]["id"], mark_read=False)] == ["one"]

    with pytest.raises(RuntimeError), store.batch():
        store.add_contact("gone", three["carol"]["id"])
        raise RuntimeError("the batch fails")
    assert store.contact("gone") is None  # an error out of the block rolls back all of it


def test_receive_many_commits_the_chat_store_once_per_batch(chat, three):
    alice, bob = chat["alice"], chat["bob"]
    peer = run(alice.resolve_peer(three["bob"]["id"]))
    wire = Wire()
    run(alice.send_texts(peer, texts(20), route(wire)))
    commits = []
    bob.store._db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    got = bob.receive_many([e for _, e in wire.sent])
    bob.store._db.set_trace_callback(None)
    assert not any(isinstance(g, KezError) for g in got)
    assert len(commits) == 1
