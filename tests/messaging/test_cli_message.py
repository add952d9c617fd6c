"""`kez sigchain add-inbox` and `kez message seal/open` between two keystores (two people).

In-process (kez_cli.main.main), each person with their own KEZ_HOME; the
chain files are exchanged as a user would (export, import).
"""

from __future__ import annotations

import json
import stat

from kez_core.messaging import InboxKeyring
from message_cli_helpers import kez, kez_json


def test_add_inbox_stores_the_secret_privately_and_publishes_the_key(capsys, two):
    bob = two["bob"]
    shown = kez_json(capsys, bob["home"], "sigchain", "show")
    assert [k["key"] for k in shown["inbox_keys"]] == [bob["inbox"]]
    folder = bob["home"] / "identities" / "bob" / "inbox"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [r.key for r in InboxKeyring(folder.parent).records()] == [bob["inbox"]]


def test_a_message_from_alice_opens_for_bob_once_with_the_sender_checked(capsys, two):
    alice, bob = two["alice"], two["bob"]
    sealed = kez_json(
        capsys, alice["home"], "message", "seal", "--to", str(bob["chain"]), "--text", "hi bob ✓"
    )
    assert [s["inbox_key"] for s in sealed] == [bob["inbox"]]
    envelope = sealed[0]["envelope"]
    opened = kez_json(capsys, bob["home"], "message", "open", envelope)
    assert opened[0]["body"] == {"kind": "text", "text": "hi bob ✓"}
    assert opened[0]["from"] == alice["id"] and opened[0]["sender_checked"] is True
    assert opened[0]["message_id"] == sealed[0]["message_id"]
    code, out, _ = kez(capsys, bob["home"], "message", "open", envelope, "--json")
    assert code == 1 and json.loads(out)[0]["refused"]["reason"] == "replay"


def test_recipients_are_named_by_identity_id_from_the_local_store(capsys, two):
    alice, bob = two["alice"], two["bob"]
    code, out, err = kez(
        capsys, alice["home"], "message", "seal", "--to", bob["id"], "--text", "by id"
    )
    assert code == 0, err
    code, out, err = kez(capsys, bob["home"], "message", "open", out.strip())
    assert code == 0 and "by id" in out


def test_only_the_recipient_can_open_and_garbage_is_refused_politely(capsys, two):
    alice, bob = two["alice"], two["bob"]
    sealed = kez_json(
        capsys, alice["home"], "message", "seal", "--to", str(bob["chain"]), "--text", "x"
    )
    code, out, _ = kez(capsys, alice["home"], "message", "open", sealed[0]["envelope"], "--json")
    assert code == 1 and json.loads(out)[0]["refused"]["error"] == "bad_envelope"
    code, out, err = kez(capsys, bob["home"], "message", "open", "kez:e1:AAAA")
    assert code == 1 and "Traceback" not in out + err


def test_unknown_recipients_and_missing_inbox_keys_are_clear_errors(capsys, two, tmp_path):
    alice = two["alice"]
    code, _, err = kez(capsys, alice["home"], "message", "seal", "--to", "nobody", "--text", "x")
    assert code == 4 and "neither a chain file nor an identity id" in err
    carol = tmp_path / "carol"
    kez_json(capsys, carol, "identity", "new", "--name", "carol", "--no-passphrase")
    code, _, err = kez(capsys, carol, "message", "open", "kez:e1:AAAA")
    assert code == 4 and "add-inbox" in err
    kez_json(capsys, carol, "sigchain", "init")
    chain = tmp_path / "carol.jsonl"
    kez_json(capsys, carol, "sigchain", "add-recovery", "--generate", str(tmp_path / "r.pem"))
    kez(capsys, carol, "sigchain", "export", str(chain))
    code, _, err = kez(capsys, alice["home"], "message", "seal", "--to", str(chain), "--text", "x")
    assert code == 1 and "no current inbox key" in err


def test_encrypted_identities_keep_inbox_secrets_encrypted(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("KEZ_PASSPHRASE", "correct horse")
    home = tmp_path / "dana"
    kez_json(capsys, home, "identity", "new", "--name", "dana")
    kez_json(capsys, home, "sigchain", "init")
    kez_json(capsys, home, "sigchain", "add-inbox", "--expires-in", "2w")
    pem = next((home / "identities" / "dana" / "inbox").glob("*.pem")).read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    chain = tmp_path / "dana.jsonl"
    kez(capsys, home, "sigchain", "export", str(chain))
    sealed = kez_json(capsys, home, "message", "seal", "--to", str(chain), "--text", "note to self")
    monkeypatch.setenv("KEZ_PASSPHRASE", "wrong")
    code, _, err = kez(capsys, home, "message", "open", sealed[0]["envelope"])
    assert code == 4
    monkeypatch.setenv("KEZ_PASSPHRASE", "correct horse")
    opened = kez_json(capsys, home, "message", "open", sealed[0]["envelope"])
    assert opened[0]["body"]["text"] == "note to self"


def test_a_sender_whose_local_chain_is_still_empty_is_shown_unchecked(capsys, two, tmp_path):
    bob = two["bob"]
    erin = tmp_path / "erin"
    kez_json(capsys, erin, "identity", "new", "--name", "erin", "--no-passphrase")
    started = kez_json(capsys, erin, "sigchain", "init")
    # Bob has an empty copy of Erin's chain (as `sigchain init` on a shared home would leave).
    empty = bob["home"] / "chains" / (started["identity_id"].replace(":", "-") + ".jsonl")
    empty.write_bytes(b"")
    sealed = kez_json(capsys, erin, "message", "seal", "--to", str(bob["chain"]), "--text", "hi")
    opened = kez_json(capsys, bob["home"], "message", "open", sealed[0]["envelope"])
    assert opened[0]["sender_checked"] is False and "sigchain pull" in opened[0]["sender_note"]


def test_building_the_cli_again_does_not_grow_the_message_group():
    """`main()` builds the command tree per call (tests call it thousands of times)."""
    import typer
    from kez_cli.main import build_app

    for _ in range(3):
        root = typer.main.get_command(build_app())
        ctx = typer._click.Context(root, info_name="kez")
        message = root.get_command(ctx, "message")  # the lazy tree builds it on first use
        assert sorted(message.commands) == [
            "conversations",
            "history",
            "listen",
            "open",
            "seal",
            "send",
        ]  # not 6 more per build


def test_add_inbox_asks_for_the_passphrase_once(capsys, tmp_path, monkeypatch):
    """The identity's key and the new inbox secret use one passphrase: one prompt, not two."""
    import getpass

    from kez_cli import passphrase

    home = tmp_path / "fay"
    monkeypatch.setenv("KEZ_PASSPHRASE", "pw")
    kez_json(capsys, home, "identity", "new", "--name", "fay")
    kez_json(capsys, home, "sigchain", "init")
    monkeypatch.delenv("KEZ_PASSPHRASE")
    prompts: list[str] = []
    monkeypatch.setattr(passphrase, "interactive", lambda: True)
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": prompts.append(prompt) or "pw")
    kez_json(capsys, home, "sigchain", "add-inbox")
    assert len(prompts) == 1
