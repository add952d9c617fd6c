"""Messages end to end in one process: sign, pad, seal to an inbox key, open, check, accept once.

Real parts only: keys from the registry, chains from `SigchainBuilder`,
HPKE from `cryptography`, a replay store in a real SQLite file; the
envelope is also opened by an independent HPKE implementation (pyhpke).
"""

from __future__ import annotations

import base64
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from kez_core.errors import SchemaError, SignatureError
from kez_core.keys import Signer
from kez_core.messaging import (
    PREFIX,
    EnvelopeError,
    InboxSecret,
    MessageRefused,
    MessageTooLarge,
    ReplayStore,
    ack_body,
    check_sender,
    create_message,
    open_envelope,
    read_message,
    routing_id,
    seal,
    seal_for_devices,
    seal_message,
    text_body,
)
from kez_core.messaging.envelope import INFO, envelope_bytes
from kez_core.messaging.padding import BUCKETS, MESSAGE_MAX_BUCKET
from kez_core.sigchain import SigchainBuilder
from kez_core.signed import SignedObject

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def alice() -> Signer:
    return Signer.generate()


@pytest.fixture
def bob() -> Signer:
    return Signer.generate()


@pytest.fixture
def inbox() -> InboxSecret:
    return InboxSecret.generate()


@pytest.fixture
def replay(tmp_path) -> ReplayStore:
    with ReplayStore(tmp_path / "replay.db") as store:
        yield store


def send(alice, bob, inbox, body=None, at=T0, identity=None):
    """(the signed message, its envelope text) from alice (or `identity`, signed by alice's key)
    to bob's inbox key."""
    obj = create_message(
        alice,
        sender_identity=identity or alice.key_id,
        recipient=bob.key_id,
        inbox_key=inbox.key_id,
        body=body or text_body("hello bob"),
        created_at=at,
    )
    return obj, seal_message(obj)


def test_a_message_opens_for_its_recipient_once(alice, bob, inbox, replay):
    obj, envelope = send(alice, bob, inbox)
    assert envelope.startswith(PREFIX)
    message = open_envelope(envelope, [inbox], identity=bob.key_id, replay=replay, at=T0)
    assert message.id == obj.id
    assert message.body == {"kind": "text", "text": "hello bob"}
    assert (message.sender, message.sender_identity, message.recipient) == (
        alice.key_id,
        alice.key_id,
        bob.key_id,
    )
    assert message.inbox_key == inbox.key_id
    with pytest.raises(MessageRefused) as refused:
        open_envelope(envelope, [inbox], identity=bob.key_id, replay=replay, at=T0)
    assert refused.value.reason == "replay"


def test_the_replay_store_survives_a_restart(alice, bob, inbox, tmp_path):
    _, envelope = send(alice, bob, inbox)
    with ReplayStore(tmp_path / "r.db") as store:
        open_envelope(envelope, [inbox], identity=bob.key_id, replay=store, at=T0)
    with (
        ReplayStore(tmp_path / "r.db") as store,
        pytest.raises(MessageRefused, match="already received"),
    ):
        open_envelope(envelope, [inbox], identity=bob.key_id, replay=store, at=T0)


def test_processes_racing_on_one_replay_store_accept_a_message_once(alice, bob, inbox, tmp_path):
    _, envelope = send(alice, bob, inbox)
    secret = inbox.to_bytes().hex()
    code = (
        "import sys\n"
        "from datetime import datetime\n"
        "from kez_core.messaging import InboxSecret, MessageRefused, ReplayStore, open_envelope\n"
        "env, secret, me, path, at = sys.argv[1:]\n"
        "store = ReplayStore(path)\n"
        "try:\n"
        "    open_envelope(env, [InboxSecret.from_bytes(bytes.fromhex(secret))], identity=me,\n"
        "                  replay=store, at=datetime.fromisoformat(at))\n"
        "    print('accepted')\n"
        "except MessageRefused as exc:\n"
        "    print(exc.reason)\n"
    )
    args = [envelope, secret, bob.key_id, str(tmp_path / "race.db"), T0.isoformat()]
    procs = [
        subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    answers = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert answers == ["accepted", "replay", "replay", "replay"]


def test_the_envelope_names_nobody(alice, bob, inbox):
    _, envelope = send(alice, bob, inbox)
    raw = envelope_bytes(envelope)
    for key in (alice.key_id, bob.key_id, inbox.key_id):
        public = bytes.fromhex(key.split(":")[1])
        assert public not in raw
        assert key.split(":")[1].encode() not in envelope.encode()


def test_padding_hides_the_length_within_a_bucket(alice, bob, inbox):
    sizes = {len(send(alice, bob, inbox, text_body("x" * n))[1]) for n in (1, 20, 100)}
    assert len(sizes) == 1
    longer = len(send(alice, bob, inbox, text_body("x" * 3000))[1])
    assert longer > sizes.pop()


def test_an_80_kb_inline_file_fits_and_more_than_the_largest_bucket_is_refused(alice, bob, inbox):
    data = base64.b64encode(bytes(80_000)).decode()
    _, envelope = send(alice, bob, inbox, {"kind": "file", "name": "a.bin", "data": data})
    assert (
        len(envelope_bytes(envelope)) == 32 + MESSAGE_MAX_BUCKET + 16
    )  # the largest for a message alone
    with pytest.raises(MessageTooLarge):  # the larger buckets hold attachments only
        send(alice, bob, inbox, text_body("x" * MESSAGE_MAX_BUCKET))


def test_the_envelope_is_rfc9180_hpke_as_another_implementation_reads_it(alice, bob, inbox):
    from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey

    obj, envelope = send(alice, bob, inbox)
    raw = envelope_bytes(envelope)
    suite = CipherSuite.new(
        KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305
    )
    key = KEMKey.from_pyca_cryptography_key(inbox.private)
    ctx = suite.create_recipient_context(raw[:32], key, info=INFO)
    padded = ctx.open(raw[32:])
    assert padded.startswith(obj.canonical() + b"\x80")
    assert len(padded) in BUCKETS


def test_other_keys_and_tampering_do_not_open(alice, bob, inbox):
    _, envelope = send(alice, bob, inbox)
    with pytest.raises(EnvelopeError, match="any of our inbox keys"):
        open_envelope(envelope, [InboxSecret.generate()], identity=bob.key_id, replay=None, at=T0)
    body = envelope[len(PREFIX) :]
    flipped = PREFIX + body[:50] + ("A" if body[50] != "A" else "B") + body[51:]
    with pytest.raises(EnvelopeError):
        open_envelope(flipped, [inbox], identity=bob.key_id, replay=None, at=T0)


def test_the_previous_inbox_key_still_opens_during_a_rotation(alice, bob, inbox):
    new = InboxSecret.generate()
    _, envelope = send(alice, bob, inbox)
    message = open_envelope(envelope, [new, inbox], identity=bob.key_id, replay=None, at=T0)
    assert message.inbox_key == inbox.key_id


def test_a_message_rewrapped_to_someone_else_is_refused(alice, bob, inbox):
    """Bob takes Alice's signed message and seals it to Carol: Carol sees it was not for her."""
    carol, carol_inbox = Signer.generate(), InboxSecret.generate()
    obj, _ = send(alice, bob, inbox)
    rewrapped = seal(obj.canonical(), carol_inbox.key_id)
    with pytest.raises(MessageRefused) as refused:
        open_envelope(rewrapped, [carol_inbox], identity=carol.key_id, replay=None, at=T0)
    assert refused.value.reason == "wrong_inbox_key"
    # Even sealed to the key the message names, it is still not for Carol.
    _, sneaky = send(alice, bob, carol_inbox)
    with pytest.raises(MessageRefused) as refused:
        open_envelope(sneaky, [carol_inbox], identity=carol.key_id, replay=None, at=T0)
    assert refused.value.reason == "wrong_recipient"


def test_a_forged_signature_is_refused_before_the_replay_store(alice, bob, inbox, replay):
    obj, _ = send(alice, bob, inbox)
    data = obj.to_dict()
    data["payload"]["body"] = text_body("send money")
    forged = SignedObject.from_dict(data)
    with pytest.raises(SignatureError):
        open_envelope(
            seal(forged.canonical(), inbox.key_id),
            [inbox],
            identity=bob.key_id,
            replay=replay,
            at=T0,
        )
    assert len(replay) == 0


@pytest.mark.parametrize(
    ("age", "reason"),
    [
        (timedelta(days=7, seconds=1), "too_old"),
        (timedelta(minutes=-5, seconds=-1), "from_future"),
    ],
)
def test_messages_outside_the_window_are_refused(alice, bob, inbox, replay, age, reason):
    _, envelope = send(alice, bob, inbox, at=T0 - age)
    with pytest.raises(MessageRefused) as refused:
        open_envelope(envelope, [inbox], identity=bob.key_id, replay=replay, at=T0)
    assert refused.value.reason == reason
    assert len(replay) == 0


def test_edges_of_the_window_are_accepted(alice, bob, inbox, replay):
    for age in (timedelta(days=7), timedelta(minutes=-5)):
        _, envelope = send(alice, bob, inbox, at=T0 - age)
        open_envelope(envelope, [inbox], identity=bob.key_id, replay=replay, at=T0)


def test_pruning_forgets_only_what_the_window_refuses(alice, bob, inbox, replay):
    for at in (T0 - timedelta(days=7), T0):
        _, envelope = send(alice, bob, inbox, at=at)
        open_envelope(envelope, [inbox], identity=bob.key_id, replay=replay, at=at)
    assert replay.prune(T0 + timedelta(minutes=6)) == 1
    assert len(replay) == 1


def test_acks_are_messages_that_name_message_ids(alice, bob, inbox):
    obj, _ = send(alice, bob, inbox)
    alice_inbox = InboxSecret.generate()
    _, envelope = send(bob, alice, alice_inbox, ack_body([obj.id]))
    message = open_envelope(envelope, [alice_inbox], identity=alice.key_id, replay=None, at=T0)
    assert message.kind == "ack" and message.body["ids"] == [obj.id]
    with pytest.raises(SchemaError, match="ids"):
        send(bob, alice, alice_inbox, ack_body([]))
    with pytest.raises(SchemaError, match="ids"):
        send(bob, alice, alice_inbox, ack_body(["not-an-id"]))


def test_unknown_body_kinds_are_kept_for_the_application(alice, bob, inbox):
    _, envelope = send(alice, bob, inbox, {"kind": "reaction", "emoji": "👍", "to": "x"})
    message = open_envelope(envelope, [inbox], identity=bob.key_id, replay=None, at=T0)
    assert message.body == {"kind": "reaction", "emoji": "👍", "to": "x"}


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("text", "JSON object"),
        ({"text": "no kind"}, "body.kind"),
        ({"kind": "Text", "text": "x"}, "body.kind"),
        ({"kind": "text"}, "body.text"),
        ({"kind": "text", "text": 3}, "body.text"),
    ],
)
def test_malformed_bodies_are_refused_at_the_sender(alice, bob, inbox, body, match):
    with pytest.raises(SchemaError, match=match):
        send(alice, bob, inbox, body)


def test_malformed_payloads_are_refused(alice, bob, inbox):
    obj, _ = send(alice, bob, inbox)
    for field, value in [
        ("recipient", "ed25519:XYZ"),
        ("sender_identity", 7),
        ("inbox_key", "x25519:" + "A" * 64),
        ("nonce", "00"),
        ("created_at", "2026-11-25 12:00:00"),
    ]:
        data = obj.to_dict()
        data["payload"][field] = value
        with pytest.raises(SchemaError if field != "created_at" else Exception) as exc:
            read_message(SignedObject.from_dict(data))
        assert exc.value.__class__.__module__.startswith("kez_core")
    data = obj.to_dict()
    del data["payload"]["body"]
    with pytest.raises(SchemaError, match="'body'"):
        read_message(SignedObject.from_dict(data))


def test_routing_ids_follow_the_inbox_key(inbox):
    rid = routing_id(inbox.key_id)
    assert len(rid) == 64 and int(rid, 16) >= 0
    assert rid == routing_id(inbox.key_id)
    assert rid != routing_id(InboxSecret.generate().key_id)


# ------------------------------------------------------------- chains and devices


def chain_with_devices(at=T0 - timedelta(hours=1)):
    primary, phone, laptop, recovery = (Signer.generate() for _ in range(4))
    clock = iter(at + timedelta(seconds=i) for i in range(100))
    builder = SigchainBuilder(clock=lambda: next(clock))
    builder.add_recovery(primary, recovery.key_id)  # first link: the identity is `primary`
    builder.add_device(primary, phone, "phone")
    builder.add_device(primary, laptop, "laptop")
    secrets = {}
    for device in (phone, laptop):
        secrets[device.key_id] = InboxSecret.generate()
        builder.add_inbox(device, secrets[device.key_id].key_id)
    return builder, primary, phone, laptop, recovery, secrets


def test_a_message_goes_to_every_device_and_each_opens_its_own():
    builder, primary, phone, laptop, _, secrets = chain_with_devices()
    alice = Signer.generate()
    sealed = seal_for_devices(
        alice, sender_identity=alice.key_id, recipient=builder.state, body=text_body("hi"), at=T0
    )
    assert {key for key, _, _ in sealed} == {s.key_id for s in secrets.values()}
    for device in (phone, laptop):
        mine = [env for key, _, env in sealed if key == secrets[device.key_id].key_id]
        message = open_envelope(
            mine[0], [secrets[device.key_id]], identity=builder.identity_id, replay=None, at=T0
        )
        assert message.recipient == primary.key_id
        others = [env for key, _, env in sealed if key != secrets[device.key_id].key_id]
        with pytest.raises(EnvelopeError):
            open_envelope(
                others[0],
                [secrets[device.key_id]],
                identity=builder.identity_id,
                replay=None,
                at=T0,
            )


def test_no_current_inbox_key_means_no_message():
    builder, *_ = chain_with_devices(at=T0 - timedelta(days=30))
    with pytest.raises(MessageRefused) as refused:
        seal_for_devices(
            Signer.generate(),
            sender_identity=Signer.generate().key_id,
            recipient=builder.state,
            body=text_body("hi"),
            at=T0,
        )
    assert refused.value.reason == "no_inbox_key"


def test_the_sender_check_follows_the_senders_chain(bob, inbox):
    builder, primary, phone, laptop, recovery, _ = chain_with_devices()
    identity = builder.identity_id

    def from_(key):
        return read_message(send(key, bob, inbox, identity=identity)[0])

    check_sender(from_(primary), builder.state)
    check_sender(from_(phone), builder.state)
    for key in (recovery, Signer.generate()):
        with pytest.raises(MessageRefused) as refused:
            check_sender(from_(key), builder.state)
        assert refused.value.reason == "sender_not_allowed"
    builder.remove_device(primary, laptop.key_id)
    new_primary = Signer.generate()
    builder.rotate(primary, new_primary)
    for key in (laptop, primary):
        with pytest.raises(MessageRefused, match="rotated-away|not a key"):
            check_sender(from_(key), builder.state)
    check_sender(from_(new_primary), builder.state)
    other, _, _, _, _, _ = chain_with_devices()
    with pytest.raises(MessageRefused, match="chain given"):
        check_sender(from_(new_primary), other.state)


def test_a_replay_store_path_that_is_not_one_is_a_store_error_and_left_alone(tmp_path):
    from kez_core.errors import StoreError

    garbage = tmp_path / "notes.txt"
    garbage.write_bytes(b"my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match="replay store"):
        ReplayStore(garbage)
    assert garbage.read_bytes() == b"my notes, not a database\n" * 100
    with pytest.raises(StoreError):
        ReplayStore(tmp_path)  # a folder
