"""MessagingService: local echo, acks (forged, replayed, unknown), strangers and blocked senders.

Envelopes move through an in-memory transport here (a list), so each step
can be replayed or forged at will; tests/chat/test_chat_cli.py runs the
same flow through a real nats-server and kez-server.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from kez_core.chat import MessagingService, Route
from kez_core.errors import KezError
from kez_core.keystore import Keystore
from kez_core.messaging import MessageRefused, ack_body, create_message, seal
from kez_core.protocols import ChannelContext


class Wire:
    """A transport that keeps what it is given (name, routing id, envelope)."""

    name = "wire"
    options = ()

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail = fail

    async def send(self, routing_id: str, envelope: bytes, ctx: ChannelContext) -> None:
        if self.fail:
            from kez_core.errors import TransportError

            raise TransportError("the wire is cut")
        self.sent.append((routing_id, envelope.decode()))


def service(person) -> MessagingService:
    store = Keystore(person["home"])
    return MessagingService(store, store.get(), lambda: None)


def route(wire: Wire) -> list[Route]:
    return [Route("wire", wire, ChannelContext())]


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def chat(three):
    services = {name: service(p) for name, p in three.items()}
    yield services
    for s in services.values():
        s.close()


def send(chat, sender, to, text, wire):
    peer = run(chat[sender].resolve_peer(to))
    return run(chat[sender].send_text(peer, text, route(wire)))


def test_message_moves_sending_sent_delivered_through_the_ack(chat, three):
    wire = Wire()
    result = send(chat, "alice", three["bob"]["id"], "hi bob", wire)
    assert result.state == "sent" and [d.sent for d in result.deliveries] == [True]
    _, [entry] = run(chat["alice"].history(three["bob"]["id"]))
    assert (entry.direction, entry.state, entry.body["text"]) == ("out", "sent", "hi bob")

    got = chat["bob"].receive(wire.sent[0][1])
    assert got.kind == "message" and got.sender_checked and got.stranger
    assert chat["bob"].store.pending_acks() == {three["alice"]["id"]: [got.message.id]}

    acks = Wire()
    assert run(chat["bob"].flush_acks(route(acks))) == {three["alice"]["id"]: [got.message.id]}
    assert chat["bob"].store.pending_acks() == {}
    ack = chat["alice"].receive(acks.sent[0][1])
    assert ack.kind == "ack" and ack.delivered == (result.key,)
    _, [entry] = run(chat["alice"].history(three["bob"]["id"]))
    assert entry.state == "delivered"
    assert entry.to_json() == {
        "id": result.key,
        "direction": "out",
        "state": "delivered",
        "created_at": entry.created_at,
        "text": "hi bob",
        "via": "wire",
    }


def test_a_failed_send_keeps_the_message_as_sending(chat, three):
    result = send(chat, "alice", three["bob"]["id"], "lost?", Wire(fail=True))
    assert result.state == "sending" and result.deliveries[0].error["message"] == "the wire is cut"
    [entry] = run(chat["alice"].history(three["bob"]["id"]))[1]
    assert (entry.state, entry.body["text"]) == ("sending", "lost?")


def test_replayed_ack_is_refused_and_changes_nothing(chat, three):
    wire, acks = Wire(), Wire()
    send(chat, "alice", three["bob"]["id"], "one", wire)
    chat["bob"].receive(wire.sent[0][1])
    run(chat["bob"].flush_acks(route(acks)))
    chat["alice"].receive(acks.sent[0][1])
    # the same message id stored anew as `sent` would flip again if a replay were applied
    with chat["alice"].store._write() as db:
        db.execute("UPDATE messages SET state = 'sent'")
    with pytest.raises(MessageRefused) as refused:
        chat["alice"].receive(acks.sent[0][1])
    assert refused.value.reason == "replay"
    assert [e.state for e in run(chat["alice"].history(three["bob"]["id"]))[1]] == ["sent"]


def test_forged_acks_change_nothing(chat, three):
    wire = Wire()
    result = send(chat, "alice", three["bob"]["id"], "secret plans", wire)
    message_id = result.deliveries[0].message_id
    alice_inbox = three["alice"]["inbox"]
    carol = Keystore(three["carol"]["home"])
    carol_signer = carol.signer(None, lambda: None)

    # 1. Carol acks Alice's message to Bob in her own name: not a message to Carol
    own = create_message(
        carol_signer,
        sender_identity=three["carol"]["id"],
        recipient=three["alice"]["id"],
        inbox_key=alice_inbox,
        body=ack_body([message_id]),
    )
    got = chat["alice"].receive(seal(own.canonical(), alice_inbox))
    assert got.kind == "ack" and got.delivered == ()

    # 2. Carol signs an ack that says it is from Bob: Bob's chain does not allow her key
    posing = create_message(
        carol_signer,
        sender_identity=three["bob"]["id"],
        recipient=three["alice"]["id"],
        inbox_key=alice_inbox,
        body=ack_body([message_id]),
    )
    with pytest.raises(MessageRefused) as refused:
        chat["alice"].receive(seal(posing.canonical(), alice_inbox))
    assert refused.value.reason == "sender_not_allowed"

    # 3. Bob acks an id Alice never sent him
    bob_signer = Keystore(three["bob"]["home"]).signer(None, lambda: None)
    other = create_message(
        bob_signer,
        sender_identity=three["bob"]["id"],
        recipient=three["alice"]["id"],
        inbox_key=alice_inbox,
        body=ack_body(["0" * 64]),
    )
    assert chat["alice"].receive(seal(other.canonical(), alice_inbox)).delivered == ()

    assert [e.state for e in run(chat["alice"].history(three["bob"]["id"]))[1]] == ["sent"]


def test_an_ack_from_an_unknown_chain_changes_nothing(chat, three):
    wire, acks = Wire(), Wire()
    send(chat, "alice", three["bob"]["id"], "x", wire)
    chat["bob"].receive(wire.sent[0][1])
    run(chat["bob"].flush_acks(route(acks)))
    Keystore(three["alice"]["home"]).chain_path(
        three["bob"]["id"]
    ).unlink()  # Alice forgets Bob's chain
    got = chat["alice"].receive(acks.sent[0][1])
    assert got.kind == "ack" and not got.sender_checked and got.delivered == ()


def test_acks_that_cannot_be_sent_stay_queued_for_the_next_run(chat, three):
    wire = Wire()
    send(chat, "alice", three["bob"]["id"], "x", wire)
    got = chat["bob"].receive(wire.sent[0][1])
    assert run(chat["bob"].flush_acks(route(Wire(fail=True)))) == {}
    chat["bob"].close()
    again = service(three["bob"])  # the next start
    try:
        assert again.store.pending_acks() == {three["alice"]["id"]: [got.message.id]}
        acks = Wire()
        run(again.flush_acks(route(acks)))
        assert len(acks.sent) == 1 and again.store.pending_acks() == {}
    finally:
        again.close()


def test_contacts_strangers_and_blocked_senders(chat, three):
    bob = chat["bob"]
    wire = Wire()
    send(chat, "alice", three["bob"]["id"], "from a stranger", wire)
    assert bob.receive(wire.sent[-1][1]).stranger
    [row] = bob.conversations()
    assert row["stranger"] and row["unread"] == 1 and row["contact"] is None

    run(bob.add_contact("Ali", three["alice"]["id"]))
    [row] = bob.conversations()
    assert not row["stranger"] and row["contact"] == "Ali"
    # a contact name is a peer name
    assert run(bob.resolve_peer("Ali")).identity == three["alice"]["id"]
    _, entries = run(bob.history("Ali"))
    assert [e.body["text"] for e in entries] == ["from a stranger"]
    assert bob.conversations()[0]["unread"] == 0

    bob.rename_contact("Ali", "Alice")
    run(bob.block("Alice"))
    send(chat, "alice", three["bob"]["id"], "blocked", wire)
    assert bob.receive(wire.sent[-1][1]).kind == "dropped"
    assert [e.body["text"] for e in run(bob.history("Alice"))[1]] == ["from a stranger"]
    assert bob.store.pending_acks() == {
        three["alice"]["id"]: [entries[0].key]
    }  # no ack for a dropped one

    run(bob.block("Alice", blocked=False))
    bob.remove_contact("Alice")
    assert bob.contacts() == []

    # someone who is no contact can be blocked too
    run(bob.block(three["carol"]["id"]))
    send(chat, "carol", three["bob"]["id"], "spam", wire)
    assert bob.receive(wire.sent[-1][1]).kind == "dropped"


def test_peer_names(chat, three):
    alice = chat["alice"]
    assert run(alice.resolve_peer(str(three["bob"]["chain"]))).identity == three["bob"]["id"]
    assert run(alice.resolve_peer(three["bob"]["id"])).identity == three["bob"]["id"]
    assert (
        run(alice.resolve_peer("alice")).identity == three["alice"]["id"]
    )  # a local identity name
    with pytest.raises(KezError) as err:
        run(alice.resolve_peer("nobody-at-all"))
    assert "no handle, chain file, contact" in err.value.message


def test_search_finds_text_case_insensitively_and_marks_nothing_read(chat, three):
    wire = Wire()
    for text in ("Lunch at noon?", "the report", "lunch moved"):
        send(chat, "alice", three["bob"]["id"], text, wire)
    for _, envelope in wire.sent:
        chat["bob"].receive(envelope)
    alice = three["alice"]["id"]
    hits = chat["bob"].search(alice, "LUNCH")
    assert [e.body["text"] for e in hits] == ["Lunch at noon?", "lunch moved"]
    assert chat["bob"].search(alice, "") == [] and chat["bob"].search(alice, "nothing") == []
    assert chat["bob"].conversations()[0]["unread"] == 3


def test_each_message_keeps_the_transports_it_went_and_came_by(chat, three):
    wire = Wire()
    result = send(chat, "alice", three["bob"]["id"], "hi", wire)
    _, [out] = run(chat["alice"].history(three["bob"]["id"]))
    assert out.key == result.key and out.via == "wire" and out.to_json()["via"] == "wire"
    got = chat["bob"].receive(wire.sent[0][1], via="nats")
    chat["bob"].store.add_via(got.message.id, ["nostr", "nats"])  # merged, sorted, once each
    _, [inc] = run(chat["bob"].history(three["alice"]["id"]))
    assert inc.via == "nats, nostr"
    failed = send(chat, "alice", three["bob"]["id"], "lost", Wire(fail=True))
    assert [
        e.via for e in run(chat["alice"].history(three["bob"]["id"]))[1] if e.key == failed.key
    ] == [None]


def test_bodies_are_encrypted_at_rest(chat, three):
    wire = Wire()
    send(chat, "alice", three["bob"]["id"], "the eagle lands at dawn", wire)
    db = Path(three["alice"]["home"]) / "identities" / "alice" / "chat.db"
    chat["alice"].close()
    raw = b"".join(p.read_bytes() for p in db.parent.glob("chat.db*"))
    assert b"eagle" not in raw
    from kez_core.chat.store import MIGRATIONS

    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_a_sender_is_told_when_every_inbox_key_has_expired(chat, three, capsys):
    from datetime import timedelta

    from kez_core.timefmt import now

    bob = run(chat["alice"].resolve_peer(three["bob"]["id"]))
    chat["alice"].clock = lambda: now() + timedelta(days=8)  # the fixture's keys last 7 days
    with pytest.raises(MessageRefused) as refused:
        run(chat["alice"].send_text(bob, "anyone?", route(Wire())))
    assert refused.value.reason == "no_inbox_key"
    assert "every inbox key of" in refused.value.message and "has expired" in refused.value.message
    assert run(chat["alice"].history(three["bob"]["id"]))[1] == []  # nothing stored as sending


def test_inbox_keys_renew_on_their_last_day(chat, three):
    from datetime import timedelta

    from kez_core.messaging import InboxKeyring
    from kez_core.timefmt import now

    alice = chat["alice"]
    assert alice.renew_inbox() is None  # 7 days left: nothing to do
    alice.clock = lambda: now() + timedelta(days=6, hours=12)
    new_key = alice.renew_inbox()
    assert new_key is not None and new_key != three["alice"]["inbox"]
    chain = run(alice.resolve_peer(three["alice"]["id"])).chain
    assert {k.key for k in chain.inbox_keys.values()} == {new_key}  # the device's key replaced
    assert new_key in {r.key for r in InboxKeyring(alice.folder).records()}
    alice.clock = now
    assert alice.renew_inbox() is None
    # and messages sealed to the new key open here
    wire = Wire()
    send(
        chat,
        "bob",
        str(Keystore(three["alice"]["home"]).chain_path(three["alice"]["id"])),
        "to the new key",
        wire,
    )
    assert alice.receive(wire.sent[0][1]).message.inbox_key == new_key


# ---------------------------------------------------------------- profile keys (issue 15)


def test_a_profile_key_from_its_owner_is_stored_acked_and_not_shown(chat, three):
    from kez_core.profile.keys import ProfileKeyStore, profile_key_body

    wire = Wire()
    body = profile_key_body(three["alice"]["id"], b"k" * 32, "a" * 64)
    peer = run(chat["alice"].resolve_peer(three["bob"]["id"]))
    result = run(chat["alice"].send_profile_key(peer, body, route(wire)))
    assert any(d.sent for d in result.deliveries)
    got = chat["bob"].receive(wire.sent[0][1])
    assert got.kind == "profile_key"
    assert ProfileKeyStore(three["bob"]["home"]).get(three["alice"]["id"], "a" * 64) == b"k" * 32
    assert run(chat["bob"].history(three["alice"]["id"]))[1] == []  # not a chat message
    assert chat["bob"].store.pending_acks() == {three["alice"]["id"]: [got.message.id]}


def test_a_profile_key_naming_another_identity_is_refused(chat, three):
    from kez_core.profile.keys import ProfileKeyStore, profile_key_body

    # Carol (a checked sender) hands Bob a key that claims to open Alice's picture
    wire = Wire()
    body = profile_key_body(three["alice"]["id"], b"x" * 32, "a" * 64)
    peer = run(chat["carol"].resolve_peer(three["bob"]["id"]))
    run(chat["carol"].send_profile_key(peer, body, route(wire)))
    got = chat["bob"].receive(wire.sent[0][1])
    assert got.kind == "refused"
    assert ProfileKeyStore(three["bob"]["home"]).get(three["alice"]["id"], "a" * 64) is None
    assert run(chat["bob"].history(three["carol"]["id"]))[1] == []


def test_a_received_profile_key_is_shown_without_the_key(chat, three, capsys):
    from kez_cli.commands.message import _print_message
    from kez_core.chat.receiving import received_json as _describe
    from kez_core.profile.keys import profile_key_body

    wire = Wire()
    body = profile_key_body(three["alice"]["id"], b"k" * 32, "a" * 64)
    peer = run(chat["alice"].resolve_peer(three["bob"]["id"]))
    run(chat["alice"].send_profile_key(peer, body, route(wire)))
    data = _describe(chat["bob"].receive(wire.sent[0][1]))
    assert data["kind"] == "profile_key" and "key" not in data["body"]
    assert data["body"]["picture_sha256"] == "a" * 64
    _print_message(data)
    out = capsys.readouterr().out
    assert "picture key" in out and (b"k" * 32).hex() not in out


def test_a_new_picture_key_goes_to_contacts_and_own_other_devices_not_to_removed_ones(chat, three):
    """`share_profile_key` (a picture change): every contact not blocked, and this identity's
    other devices (its own inbox key left out); a removed contact gets nothing; a contact that
    cannot be reached is a failed share, not an exception."""
    import attrs

    from kez_core.messaging import InboxKeyring, open_envelope, routing_id
    from kez_core.messaging.envelope import InboxSecret
    from kez_core.profile.keys import profile_key_body
    from kez_core.profile.sharing import OWN_DEVICES, own_devices_peer
    from kez_core.sigchain.model import InboxKey

    alice = chat["alice"]
    run(alice.add_contact("bob", three["bob"]["id"]))
    run(alice.add_contact("carol", three["carol"]["id"]))
    assert own_devices_peer(alice) is None  # one device: nobody else to send to

    # a second device ("phone") of alice's, with its own inbox key, in her chain
    phone_secret, phone = InboxSecret.generate(), "ed25519:" + "ab" * 32
    chain = alice.sender_chain(alice.identity)
    mine = chain.inbox_keys[alice.record.key_id]
    alice.sender_chains[alice.identity] = attrs.evolve(
        chain,
        devices={**chain.devices, phone: "phone"},
        inbox_keys={
            **chain.inbox_keys,
            phone: InboxKey(phone_secret.key_id, phone, mine.expires_at, 99, phone),
        },
    )
    assert [k.key for k in own_devices_peer(alice).chain.current_inbox_keys(alice.clock())] == [
        phone_secret.key_id
    ]

    alice.remove_contact("carol")
    wire = Wire()
    body = profile_key_body(alice.identity, b"n" * 32, "c" * 64)
    shares = run(alice.share_profile_key(body, route(wire)))
    assert [(s.name, s.sent) for s in shares] == [("bob", True), (OWN_DEVICES, True)]
    assert len(wire.sent) == 2
    got = chat["bob"].receive(wire.sent[0][1])
    assert got.kind == "profile_key"
    # the phone opens its envelope (sealed to its inbox key, addressed to alice's identity)
    message = open_envelope(
        wire.sent[1][1],
        [phone_secret],
        identity=alice.identity,
        replay=None,
        registry=alice.keystore.registry,
        sender_chain=lambda m: None,
    )
    assert message.body["kind"] == "profile_key" and message.body["key"] == (b"n" * 32).hex()
    # this device's own inbox key got nothing
    own_routes = {routing_id(r.key) for r in InboxKeyring(alice.folder).records()}
    assert own_routes and own_routes.isdisjoint({rid for rid, _ in wire.sent})

    # a cut wire: every share fails, reported, never raised
    failed = run(alice.share_profile_key(body, route(Wire(fail=True))))
    assert [s.sent for s in failed] == [False, False] and failed[0].error[
        "message"
    ] == "the wire is cut"


def test_a_senders_chain_is_read_again_only_when_its_file_changed(chat, three):
    import os

    bob = chat["bob"]
    alice = three["alice"]["id"]
    first = bob.sender_chain(alice)
    assert first is not None and bob.sender_chain(alice) is first  # unchanged file: not re-read
    path = bob.keystore.chain_path(alice)
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(path.read_bytes())
    os.replace(fresh, path)  # as every chain write does: a new file in its place
    again = bob.sender_chain(alice)
    assert again is not None and again is not first and again.head == first.head
    path.unlink()
    assert bob.sender_chain(alice) is None  # gone: unknown again
