"""The person's flow through the CLI, over a real kez-server (handles) and a real nats-server.

Bob registers `bobby@example.org`; Alice writes `kez message send
bobby@example.org hi` (the handle is looked up, its chain fetched, checked
and pinned), Bob's `listen` stores the message and acks it, Alice's
`listen` receives the ack and her history says `delivered`. Then the
handle server goes away and the conversation keeps working; a server that
says the handle is someone else now is refused.
"""

from __future__ import annotations

import os

import pytest
from kez_server.testing import running_server
from message_cli_helpers import finish, kez, kez_json, listen


@pytest.fixture
def handle_server():
    with running_server() as server:
        yield server


def test_write_to_a_handle_and_see_it_delivered(capsys, three, nats_url, handle_server):
    alice, bob = three["alice"], three["bob"]
    kez_json(capsys, bob["home"], "handle", "register", "bobby", "--server", handle_server.url)
    # Alice does not know Bob's chain beforehand: the handle brings it
    os.remove(alice["home"] / "chains" / (bob["id"].replace(":", "-") + ".jsonl"))
    nats = ["--via", "nats", "--nats-url", nats_url]
    alice_ears = listen(alice["home"], *nats, "--count", "1", "--wait", "60")
    bob_ears = listen(bob["home"], *nats, "--count", "1", "--wait", "60")
    sent = kez_json(
        capsys,
        alice["home"],
        "message",
        "send",
        "bobby@example.org",
        "hi bob ✓",
        *nats,
        "--handle-server",
        handle_server.url,
    )
    assert [(s["state"], s["sent"], s["recipient"]) for s in sent] == [("sent", True, bob["id"])]

    [got] = finish(bob_ears)
    assert got["body"]["text"] == "hi bob ✓" and got["sender_checked"] and got["stranger"]
    [ack] = finish(alice_ears)
    assert ack["kind"] == "ack" and ack["from"] == bob["id"] and ack["delivered"] == [sent[0]["id"]]

    history = kez_json(capsys, alice["home"], "message", "history", "bobby@example.org")
    assert history == [
        {
            "id": sent[0]["id"],
            "direction": "out",
            "state": "delivered",
            "created_at": history[0]["created_at"],
            "text": "hi bob ✓",
            "via": "nats",
        }
    ]
    [conv] = kez_json(capsys, bob["home"], "message", "conversations")
    assert (conv["peer"], conv["unread"], conv["stranger"]) == (alice["id"], 1, True)
    [entry] = kez_json(capsys, bob["home"], "message", "history", alice["id"])
    assert (entry["direction"], entry["text"], entry["stranger"], entry["via"]) == (
        "in",
        "hi bob ✓",
        True,
        "nats",
    )
    assert kez_json(capsys, bob["home"], "message", "conversations")[0]["unread"] == 0

    # the handle server is gone: the pinned chain carries the conversation on
    code, out, err = kez(
        capsys,
        alice["home"],
        "message",
        "send",
        "bobby@example.org",
        "still there?",
        *nats,
        "--handle-server",
        "http://127.0.0.1:9",
        "--timeout",
        "2",
    )
    assert code == 0, err
    assert "using the pinned chain of bobby@example.org" in err and "sent" in out


def test_a_handle_that_now_names_someone_else_is_refused(capsys, three, nats_url, handle_server):
    alice, bob, carol = three["alice"], three["bob"], three["carol"]
    kez_json(capsys, bob["home"], "handle", "register", "bobby", "--server", handle_server.url)
    kez_json(
        capsys,
        alice["home"],
        "contact",
        "add",
        "Bob",
        "bobby@example.org",
        "--handle-server",
        handle_server.url,
    )
    [contact] = kez_json(capsys, alice["home"], "contact", "list")
    assert (contact["name"], contact["identity"], contact["handle"]) == (
        "Bob",
        bob["id"],
        "bobby@example.org",
    )
    with running_server() as other:  # another server says bobby@example.org is Carol
        kez_json(capsys, carol["home"], "handle", "register", "bobby", "--server", other.url)
        code, _, err = kez(
            capsys,
            alice["home"],
            "message",
            "send",
            "bobby@example.org",
            "hi",
            "--via",
            "nats",
            "--nats-url",
            nats_url,
            "--handle-server",
            other.url,
        )
    assert code == 1 and "pinned to" in err and "Traceback" not in err
    assert kez_json(capsys, alice["home"], "message", "history", "Bob") == []


def test_contact_commands(capsys, three):
    alice, bob = three["alice"], three["bob"]
    home = alice["home"]
    kez_json(capsys, home, "contact", "add", "bob", bob["id"])
    code, _, err = kez(capsys, home, "contact", "add", "bob", bob["id"])
    assert code == 4 and "exists" in err
    assert kez(capsys, home, "contact", "rename", "bob", "Robert")[0] == 0
    assert kez(capsys, home, "contact", "block", "Robert")[0] == 0
    assert kez_json(capsys, home, "contact", "list")[0]["blocked"] is True
    assert kez(capsys, home, "contact", "remove", "Robert")[0] == 0
    assert kez_json(capsys, home, "contact", "list") == []
    code, _, err = kez(capsys, home, "contact", "remove", "nobody")
    assert code == 4 and "no contact named" in err


def test_send_without_a_transport_is_a_usage_error(capsys, three, monkeypatch):
    for name in [k for k in os.environ if k.startswith(("KEZ_NATS", "KEZ_TRANSPORT", "KEZ_INBOX"))]:
        monkeypatch.delenv(name)
    code, _, err = kez(capsys, three["alice"]["home"], "message", "send", three["bob"]["id"], "hi")
    assert code == 2 and "no transport is configured" in err


def test_an_encrypted_identity_keeps_its_history_encrypted(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("KEZ_PASSPHRASE", "correct horse")
    home = tmp_path / "dana"
    kez_json(capsys, home, "identity", "new", "--name", "dana")
    kez_json(capsys, home, "sigchain", "init")
    added = kez_json(capsys, home, "sigchain", "add-inbox")
    own_chain = home / "chains" / (added["identity_id"].replace(":", "-") + ".jsonl")
    sealed = kez_json(
        capsys, home, "message", "seal", "--to", str(own_chain), "--text", "note to self"
    )
    opened = kez_json(capsys, home, "message", "open", sealed[0]["envelope"])
    assert opened[0]["kind"] == "message"
    folder = home / "identities" / "dana"
    assert (folder / "chat.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert all(b"note to self" not in p.read_bytes() for p in folder.glob("chat.db*"))
    [entry] = kez_json(capsys, home, "message", "history", "dana")
    assert (entry["direction"], entry["text"]) == ("in", "note to self")
    monkeypatch.setenv("KEZ_PASSPHRASE", "wrong")
    code, _, err = kez(capsys, home, "message", "history", "dana")
    assert code == 4 and "passphrase" in err and "Traceback" not in err
