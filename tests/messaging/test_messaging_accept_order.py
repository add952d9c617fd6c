"""Issue 13 §4: a message id is recorded only after every check (the sender check too), and
damaged chain files given to `kez message seal --to` / `open --sender-chain` are refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from kez_core.keys import Signer
from kez_core.messaging import (
    InboxSecret,
    MessageRefused,
    ReplayStore,
    create_message,
    open_envelope,
    seal_message,
    text_body,
)
from kez_core.sigchain import SigchainBuilder
from message_cli_helpers import kez, kez_json

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_a_message_refused_for_a_stale_sender_chain_opens_after_the_chain_is_updated(tmp_path):
    primary, phone, bob, inbox = (
        Signer.generate(),
        Signer.generate(),
        Signer.generate(),
        InboxSecret.generate(),
    )
    alice = SigchainBuilder()
    alice.add_recovery(primary, Signer.generate().key_id, at=T0)
    stale = SigchainBuilder.resume(alice.lines).state
    alice.add_device(primary, phone, "phone", at=T0)  # bob's copy does not have this yet
    obj = create_message(
        phone,
        sender_identity=primary.key_id,
        recipient=bob.key_id,
        inbox_key=inbox.key_id,
        body=text_body("from my phone"),
        created_at=T0,
    )
    envelope = seal_message(obj)
    with ReplayStore(tmp_path / "replay.db") as replay:
        with pytest.raises(MessageRefused) as refused:
            open_envelope(
                envelope,
                [inbox],
                identity=bob.key_id,
                replay=replay,
                at=T0,
                sender_chain=lambda m: stale,
            )
        assert refused.value.reason == "sender_not_allowed"
        assert not replay.seen(obj.id) and len(replay) == 0
        message = open_envelope(
            envelope,
            [inbox],
            identity=bob.key_id,
            replay=replay,
            at=T0,
            sender_chain=lambda m: alice.state,
        )
        assert message.id == obj.id and replay.seen(obj.id)
        with pytest.raises(MessageRefused) as again:  # and it is accepted once
            open_envelope(
                envelope,
                [inbox],
                identity=bob.key_id,
                replay=replay,
                at=T0,
                sender_chain=lambda m: alice.state,
            )
        assert again.value.reason == "replay"


def test_an_unknown_sender_chain_still_records_the_message(tmp_path):
    alice, bob, inbox = Signer.generate(), Signer.generate(), InboxSecret.generate()
    obj = create_message(
        alice,
        sender_identity=alice.key_id,
        recipient=bob.key_id,
        inbox_key=inbox.key_id,
        body=text_body("hi"),
        created_at=T0,
    )
    with ReplayStore(tmp_path / "replay.db") as replay:
        open_envelope(
            seal_message(obj),
            [inbox],
            identity=bob.key_id,
            replay=replay,
            at=T0,
            sender_chain=lambda m: None,
        )
        assert replay.seen(obj.id)


def test_cli_open_refused_for_a_stale_sender_chain_then_opens(capsys, two, tmp_path):
    alice, bob = two["alice"], two["bob"]
    stale = alice["chain"]
    rotated = kez_json(capsys, alice["home"], "sigchain", "rotate", "--generate", "--no-passphrase")
    sealed = kez_json(
        capsys, alice["home"], "message", "seal", "--to", str(bob["chain"]), "--text", "new key"
    )
    envelope = sealed[0]["envelope"]
    code, out, _ = kez(
        capsys, bob["home"], "message", "open", envelope, "--sender-chain", str(stale), "--json"
    )
    assert code == 1 and json.loads(out)[0]["refused"]["reason"] == "sender_not_allowed", out
    fresh = tmp_path / "alice-fresh.jsonl"
    kez(capsys, alice["home"], "sigchain", "export", str(fresh))
    opened = kez_json(
        capsys, bob["home"], "message", "open", envelope, "--sender-chain", str(fresh)
    )
    assert opened[0]["sender_checked"] is True and opened[0]["sender_key"] == rotated["new_primary"]


def _damaged(chain, tmp_path, tail: bytes):
    path = tmp_path / "damaged.jsonl"
    path.write_bytes(chain.read_bytes() + tail)
    return path


@pytest.mark.parametrize("tail", [b"{not json\n", b'{"kez":"link"}\n', b"\n\n" + b"x" * 10 + b"\n"])
def test_seal_to_a_damaged_chain_file_is_refused(capsys, two, tmp_path, tail):
    alice, bob = two["alice"], two["bob"]
    damaged = _damaged(bob["chain"], tmp_path, tail)
    lines = damaged.read_bytes().count(b"\n")
    code, out, err = kez(
        capsys, alice["home"], "message", "seal", "--to", str(damaged), "--text", "x"
    )
    err = err.replace("\n", "")
    assert code == 3, (out, err)
    assert str(damaged) in err and f"line {lines}" in err, err
    assert "Traceback" not in err


def test_open_with_a_damaged_sender_chain_file_is_refused(capsys, two, tmp_path):
    alice, bob = two["alice"], two["bob"]
    envelope = kez_json(
        capsys, alice["home"], "message", "seal", "--to", str(bob["chain"]), "--text", "x"
    )[0]["envelope"]
    damaged = _damaged(alice["chain"], tmp_path, b"garbage\n")
    code, out, err = kez(
        capsys, bob["home"], "message", "open", envelope, "--sender-chain", str(damaged)
    )
    err = err.replace("\n", "")
    assert code == 3 and str(damaged) in err and "line 2" in err, (out, err)
    # nothing was recorded: with a good chain it still opens
    opened = kez_json(
        capsys, bob["home"], "message", "open", envelope, "--sender-chain", str(alice["chain"])
    )
    assert opened[0]["sender_checked"] is True
