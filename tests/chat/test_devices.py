"""Every device (issue 12 §4): each device's own inbox key, one envelope per device, sent copies
to the sender's other devices, renewal, all keys expired, and no message lost on a crash.

Alice has two devices: her primary (home `alice`) and a laptop (home `alice-laptop`, its own
keystore identity, added with `kez sigchain add-device` and joined with
`kez_core.devices.join_identity`). Envelopes move through the in-memory `Wire` of
test_chat_service.py, so each can be delivered to the device it is for, twice, or forged.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from message_cli_helpers import kez, kez_json
from test_chat_service import Wire, route, run, service

from kez_core.chat.sent_copy import KIND, parse_sent_copy, sent_copy_body
from kez_core.devices import join_identity
from kez_core.errors import SchemaError, StoreError
from kez_core.keystore import Keystore
from kez_core.messaging import (
    EnvelopeError,
    InboxKeysExpired,
    MessageRefused,
    create_message,
    routing_id,
    seal,
    text_body,
)
from kez_core.registry import default_registry
from kez_core.timefmt import now


def add_laptop(capsys, tmp_path, three):
    """Alice's second device: its own key and inbox key, listed in her chain; everyone has the chain."""
    alice = three["alice"]
    home = tmp_path / "alice-laptop"
    kez_json(capsys, home, "identity", "new", "--name", "laptop", "--no-passphrase")
    secret = home / "identities" / "laptop" / "secret.pem"
    added = kez_json(
        capsys,
        alice["home"],
        "sigchain",
        "add-device",
        "--name",
        "laptop",
        "--device-key",
        str(secret),
    )
    kez(capsys, alice["home"], "sigchain", "export", str(alice["chain"]))
    for name in ("alice", "bob", "carol"):  # the laptop knows the same people
        kez_json(capsys, home, "sigchain", "import", str(three[name]["chain"]))
    joined = kez_json(capsys, home, "sigchain", "join", alice["id"])
    assert joined == {"identity": "laptop", "device": added["device"], "identity_id": alice["id"]}
    inbox = kez_json(capsys, home, "sigchain", "add-inbox")  # signed by the laptop's own key
    kez(capsys, home, "sigchain", "export", str(alice["chain"]))
    for name in ("alice", "bob", "carol"):
        kez_json(capsys, three[name]["home"], "sigchain", "import", str(alice["chain"]))
    return {"home": home, "device": added["device"], "inbox": inbox["inbox_key"], "id": alice["id"]}


@pytest.fixture
def devices(capsys, tmp_path, three):
    laptop = add_laptop(capsys, tmp_path, three)
    services = {name: service(p) for name, p in three.items()}
    services["laptop"] = service(laptop)
    yield laptop, services
    for s in services.values():
        s.close()


def to_key(wire: Wire, inbox_key: str) -> list[str]:
    """The envelopes on the wire for one inbox key (one device)."""
    return [env for rid, env in wire.sent if rid == routing_id(inbox_key)]


def send(chat, sender, to, text, wire):
    peer = run(chat[sender].resolve_peer(to))
    return run(chat[sender].send_text(peer, text, route(wire)))


def history(chat, who, peer):
    return [
        (e.key, e.direction, e.state, e.body.get("text")) for e in run(chat[who].history(peer))[1]
    ]


# ---------------------------------------------------------------- one inbox key per device


def test_each_device_publishes_its_own_inbox_key_and_senders_seal_to_each(devices, three):
    laptop, chat = devices
    chain = run(chat["bob"].resolve_peer(three["alice"]["id"])).chain
    own = chain.inbox_keys[laptop["device"]]
    assert (own.key, own.added_by) == (
        laptop["inbox"],
        laptop["device"],
    )  # the device signed its add_inbox
    assert chain.role_of(laptop["device"]) == "device"
    assert {k.key for k in chain.current_inbox_keys(now())} == {
        three["alice"]["inbox"],
        laptop["inbox"],
    }

    wire = Wire()
    result = send(chat, "bob", three["alice"]["id"], "to both of you", wire)
    assert sorted(d.inbox_key for d in result.deliveries) == sorted(
        [three["alice"]["inbox"], laptop["inbox"]]
    )
    [to_primary], [to_laptop] = to_key(wire, three["alice"]["inbox"]), to_key(wire, laptop["inbox"])
    assert chat["alice"].receive(to_primary).message.body["text"] == "to both of you"
    assert chat["laptop"].receive(to_laptop).message.body["text"] == "to both of you"
    with pytest.raises(EnvelopeError):  # each device opens only its own envelope
        chat["alice"].receive(to_laptop)
    # both devices ack; the second ack changes nothing at Bob
    acks = Wire()
    run(chat["alice"].flush_acks(route(acks)))
    run(chat["laptop"].flush_acks(route(acks)))
    delivered = [chat["bob"].receive(env).delivered for _, env in acks.sent]
    assert delivered == [(result.key,), ()]


def test_joining_needs_a_chain_that_lists_the_key(capsys, tmp_path, three):
    home = tmp_path / "stranger-laptop"
    kez_json(capsys, home, "identity", "new", "--name", "laptop", "--no-passphrase")
    with pytest.raises(StoreError, match="no local chain"):
        join_identity(Keystore(home), "laptop", three["alice"]["id"])
    kez_json(capsys, home, "sigchain", "import", str(three["alice"]["chain"]))
    with pytest.raises(StoreError, match="does not list"):
        join_identity(Keystore(home), "laptop", three["alice"]["id"])
    assert Keystore(home).get("laptop").identity_id == Keystore(home).get("laptop").key_id


# ---------------------------------------------------------------- sent copies


def test_a_message_sent_from_one_device_reaches_the_others_and_histories_match(devices, three):
    laptop, chat = devices
    bob = three["bob"]["id"]
    wire = Wire()
    result = send(chat, "alice", bob, "hi from my phone", wire)
    assert result.state == "sent"
    [copy] = result.copies  # one copy, to the laptop's key: none to the sending device's own
    assert copy.sent and copy.inbox_key == laptop["inbox"]
    assert to_key(wire, three["alice"]["inbox"]) == []

    [envelope] = to_key(wire, laptop["inbox"])
    got = chat["laptop"].receive(envelope)
    assert got.kind == "sent_copy" and got.sender_checked
    assert history(chat, "laptop", bob) == [(result.key, "out", "sent", "hi from my phone")]
    assert chat["laptop"].store.pending_acks() == {}  # a sent copy is never acked
    with pytest.raises(MessageRefused) as again:  # delivered twice: stored once
        chat["laptop"].receive(envelope)
    assert again.value.reason == "replay"

    # Bob's ack goes to both of Alice's devices: each marks the message delivered
    chat["bob"].receive(to_key(wire, three["bob"]["inbox"])[0])
    acks = Wire()
    run(chat["bob"].flush_acks(route(acks)))
    assert chat["alice"].receive(to_key(acks, three["alice"]["inbox"])[0]).delivered == (
        result.key,
    )
    assert chat["laptop"].receive(to_key(acks, laptop["inbox"])[0]).delivered == (result.key,)

    # and the other way round: the laptop writes, the primary gets the copy
    wire = Wire()
    second = send(chat, "laptop", bob, "and from my laptop", wire)
    assert [c.inbox_key for c in second.copies] == [three["alice"]["inbox"]]
    assert chat["alice"].receive(to_key(wire, three["alice"]["inbox"])[0]).kind == "sent_copy"
    assert (
        history(chat, "alice", bob)
        == history(chat, "laptop", bob)
        == [
            (result.key, "out", "delivered", "hi from my phone"),
            (second.key, "out", "sent", "and from my laptop"),
        ]
    )
    # Bob sees one identity writing from two devices
    chat["bob"].receive(to_key(wire, three["bob"]["inbox"])[0])
    assert [
        (e.direction, e.body["text"]) for e in run(chat["bob"].history(three["alice"]["id"]))[1]
    ] == [
        ("in", "hi from my phone"),
        ("in", "and from my laptop"),
    ]


def test_a_file_sent_in_chunks_reaches_the_other_device_as_its_pointer(devices, three, tmp_path):
    import os

    laptop, chat = devices
    bob = three["bob"]["id"]
    path = tmp_path / "photo.bin"
    path.write_bytes(os.urandom(200_000))  # over 80 KiB: chunks, then the pointer
    wire = Wire()
    peer = run(chat["alice"].resolve_peer(bob))
    result = run(chat["alice"].send_file(peer, path, route(wire)))
    assert result.state == "sent" and [c.inbox_key for c in result.copies] == [laptop["inbox"]]
    [copy] = to_key(wire, laptop["inbox"])  # the chunks go to Bob only; one copy of the pointer
    assert chat["laptop"].receive(copy).kind == "sent_copy"
    [entry] = run(chat["laptop"].history(bob))[1]
    assert (entry.key, entry.direction, entry.state) == (result.key, "out", "sent")
    assert entry.body["file"]["name"] == "photo.bin" and entry.body["file"]["size"] == 200_000


def test_no_sent_copy_without_another_device(chat_three):
    chat, three = chat_three
    result = send(chat, "alice", three["bob"]["id"], "just me", Wire())
    assert result.copies == ()


@pytest.fixture
def chat_three(three):
    services = {name: service(p) for name, p in three.items()}
    yield services, three
    for s in services.values():
        s.close()


def test_a_sent_copy_from_anyone_else_is_refused(devices, three):
    laptop, chat = devices
    bob_signer = Keystore(three["bob"]["home"]).signer(None, lambda: None)
    lie = sent_copy_body(
        three["carol"]["id"], "a" * 64, "2026-01-01T00:00:00Z", ["a" * 64], text_body("I said that")
    )

    # 1. Bob sends a "sent copy" in his own name: not from Alice's identity
    own = create_message(
        bob_signer,
        sender_identity=three["bob"]["id"],
        recipient=three["alice"]["id"],
        inbox_key=laptop["inbox"],
        body=lie,
    )
    got = chat["laptop"].receive(seal(own.canonical(), laptop["inbox"]))
    assert got.kind == "refused"

    # 2. Bob says it is from Alice: her chain does not allow his key
    posing = create_message(
        bob_signer,
        sender_identity=three["alice"]["id"],
        recipient=three["alice"]["id"],
        inbox_key=laptop["inbox"],
        body=lie,
    )
    with pytest.raises(MessageRefused) as refused:
        chat["laptop"].receive(seal(posing.canonical(), laptop["inbox"]))
    assert refused.value.reason == "sender_not_allowed"

    # 3. from Alice's own primary, but malformed (its key is not among its ids)
    alice_signer = Keystore(three["alice"]["home"]).signer(None, lambda: None)
    bad = create_message(
        alice_signer,
        sender_identity=three["alice"]["id"],
        recipient=three["alice"]["id"],
        inbox_key=laptop["inbox"],
        body={**lie, "ids": ["b" * 64]},
    )  # key not among ids
    assert chat["laptop"].receive(seal(bad.canonical(), laptop["inbox"])).kind == "refused"

    assert chat["laptop"].conversations() == []  # nothing stored


# ---------------------------------------------------------------- the sent-copy body (decoder)

HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["kind", "to", "key", "created_at", "ids", "body", "x"]), JSON, max_size=7
    )
)
def test_any_json_is_a_sent_copy_or_a_schema_error(data):
    try:
        copy = parse_sent_copy(data, default_registry())
    except SchemaError:
        return
    assert copy.key in copy.ids  # only what checks out is returned


@settings(max_examples=100, deadline=None)
@given(HEX64, st.lists(HEX64, max_size=5), st.text(max_size=200))
def test_a_well_formed_sent_copy_reads_back(key, more, text):
    to = "ed25519:" + "c" * 64
    body = sent_copy_body(to, key, "2026-12-06T10:00:00Z", [key, *more], text_body(text))
    body = json.loads(json.dumps(body))  # as it arrives
    copy = parse_sent_copy(body, default_registry())
    assert (copy.to, copy.key, copy.body) == (to, key, {"kind": "text", "text": text})


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "text"},
        {"to": "bob"},
        {"key": "A" * 64},
        {"ids": []},
        {"ids": ["b" * 64]},
        {"ids": ["a" * 64] * 101},
        {"created_at": "yesterday"},
        {"body": {"kind": "ack", "ids": ["a" * 64]}},
        {"body": {"kind": KIND}},
        {"body": {"kind": "text"}},
        {"body": "hi"},
        {"extra": 1},
    ],
)
def test_malformed_sent_copies_are_schema_errors(change):
    body = {
        **sent_copy_body(
            "ed25519:" + "c" * 64, "a" * 64, "2026-12-06T10:00:00Z", ["a" * 64], text_body("x")
        ),
        **change,
    }
    with pytest.raises(SchemaError):
        parse_sent_copy(body, default_registry())


# ---------------------------------------------------------------- renewal and expiry


def test_a_device_renews_its_own_inbox_key_and_leaves_the_others(devices, three):
    from datetime import timedelta

    laptop, chat = devices
    chat["laptop"].clock = lambda: now() + timedelta(days=6, hours=12)
    new_key = chat["laptop"].renew_inbox()
    assert new_key is not None
    chain = Keystore(laptop["home"])
    from kez_core.chat.peers import cached_chain

    state = cached_chain(chain, three["alice"]["id"])
    mine = state.inbox_keys[laptop["device"]]
    assert (mine.key, mine.added_by) == (new_key, laptop["device"])  # signed by the laptop itself
    assert (
        state.inbox_keys[state.current_primary].key == three["alice"]["inbox"]
    )  # the primary's stays


def test_a_receiving_command_publishes_a_new_key_before_the_last_day(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("KEZ_PASSPHRASE", "")
    home = tmp_path / "dave"
    kez_json(capsys, home, "identity", "new", "--name", "dave", "--no-passphrase")
    kez_json(capsys, home, "sigchain", "init")
    old = kez_json(capsys, home, "sigchain", "add-inbox", "--expires-in", "12h")["inbox_key"]
    code, _, err = kez(capsys, home, "message", "open", "kez:e1:AAAA")  # any receiving command
    assert code == 1 and "published a new inbox key" in err, err
    shown = kez_json(capsys, home, "sigchain", "show")
    [key] = shown["inbox_keys"]
    assert key["key"] != old and key["device"] == shown["current_primary"]
    code, _, err = kez(capsys, home, "message", "open", "kez:e1:AAAA")
    assert "published a new inbox key" not in err  # 7 days left now: nothing to do


def test_a_sender_is_told_when_every_inbox_key_of_the_peer_expired(
    capsys, tmp_path, monkeypatch, chat_three
):
    import time

    chat, three = chat_three
    monkeypatch.setenv("KEZ_PASSPHRASE", "")
    home = tmp_path / "erin"
    kez_json(capsys, home, "identity", "new", "--name", "erin", "--no-passphrase")
    kez_json(capsys, home, "sigchain", "init")
    kez_json(capsys, home, "sigchain", "add-inbox", "--expires-in", "1s")
    erin = tmp_path / "erin.jsonl"
    kez(capsys, home, "sigchain", "export", str(erin))
    kez_json(capsys, three["alice"]["home"], "sigchain", "import", str(erin))
    kez_json(capsys, three["alice"]["home"], "contact", "add", "erin", str(erin))
    time.sleep(1.5)

    peer = run(chat["alice"].resolve_peer("erin"))
    with pytest.raises(InboxKeysExpired) as expired:
        run(chat["alice"].send_text(peer, "still there?", route(Wire())))
    assert expired.value.reason == "no_inbox_key" and expired.value.code == "inbox_keys_expired"
    assert (
        "every inbox key of erin" in expired.value.message
        and "kez message listen" in expired.value.hint
    )
    assert run(chat["alice"].history("erin"))[1] == []  # nothing stored as `sending`

    code, _, err = kez(
        capsys,
        three["alice"]["home"],
        "message",
        "send",
        "erin",
        "still there?",
        "--via",
        "nats",
        "--nats-url",
        "nats://127.0.0.1:9",
    )
    assert code == 1, err
    assert (
        "every inbox key of erin" in err and "kez message listen" in err and "Traceback" not in err
    )


# ---------------------------------------------------------------- crash safety


class Crash(Exception):
    """A crash at a chosen point: the process dies there (nothing after it runs)."""


def crash(*args, **kwargs):
    raise Crash("the power went out")


@pytest.mark.parametrize("where", ["after storing", "before storing"])
def test_a_crash_while_receiving_loses_no_message_and_stores_it_once(
    chat_three, monkeypatch, where
):
    chat, three = chat_three
    wire = Wire()
    send(chat, "alice", three["bob"]["id"], "survive this", wire)
    envelope = wire.sent[0][1]
    bob = chat["bob"]
    if where == "after storing":  # stored, the id not yet recorded in the replay store
        monkeypatch.setattr(bob.replay, "accept", crash)
    else:  # opened and checked, the store write fails
        monkeypatch.setattr(bob.store, "add_incoming", crash)
    with pytest.raises(Crash):
        bob.receive(envelope)
    bob.close()

    again = service(three["bob"])  # the next start reads the same envelope again
    try:
        got = again.receive(envelope)
        assert got.kind == "message" and got.message.body["text"] == "survive this"
        [entry] = run(again.history(three["alice"]["id"]))[1]
        assert (entry.key, entry.direction, entry.body["text"]) == (
            got.message.id,
            "in",
            "survive this",
        )
        assert again.store.pending_acks() == {three["alice"]["id"]: [got.message.id]}
        with pytest.raises(MessageRefused) as replay:  # and from now on it is a replay
            again.receive(envelope)
        assert replay.value.reason == "replay"
        assert len(run(again.history(three["alice"]["id"]))[1]) == 1
    finally:
        again.close()


# ---------------------------------------------------------------- the same over a real nats-server


def test_two_devices_over_nats_through_the_cli(capsys, tmp_path, three, nats_url):
    from message_cli_helpers import finish, listen

    laptop = add_laptop(capsys, tmp_path, three)
    alice, bob = three["alice"], three["bob"]
    nats = ["--via", "nats", "--nats-url", nats_url]
    bob_ears = listen(bob["home"], *nats, "--count", "1", "--wait", "60")
    alice_ears = listen(alice["home"], *nats, "--count", "1", "--wait", "60")  # Bob's ack
    laptop_ears = listen(
        laptop["home"], *nats, "--count", "2", "--wait", "60"
    )  # the sent copy, then the ack
    sent = kez_json(capsys, alice["home"], "message", "send", bob["id"], "from my phone", *nats)
    assert [(s["state"], s["sent"]) for s in sent] == [("sent", True)]

    [got] = finish(bob_ears)
    assert got["body"]["text"] == "from my phone" and got["from"] == alice["id"]
    [ack] = finish(alice_ears)
    assert ack["kind"] == "ack" and ack["delivered"] == [sent[0]["id"]]
    copy, ack = finish(laptop_ears)
    assert copy["kind"] == "sent_copy" and copy["body"]["key"] == sent[0]["id"]
    assert ack["kind"] == "ack" and ack["delivered"] == [sent[0]["id"]]

    phone = kez_json(capsys, alice["home"], "message", "history", bob["id"])
    other = kez_json(capsys, laptop["home"], "message", "history", bob["id"])
    assert phone == other and [(e["id"], e["direction"], e["state"], e["text"]) for e in phone] == [
        (sent[0]["id"], "out", "delivered", "from my phone")
    ]
