"""`kez sigchain …` end to end, including losing the primary key and recovering."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kez_core.claim import create_claim
from kez_core.keys import Signer
from kez_core.sigchain import SigchainBuilder


def kez_json(kez, *args):
    code, out, err = kez(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def home() -> Path:
    return Path(os.environ["KEZ_HOME"])


def setup_chain(kez, tmp_path, alg="ed25519"):
    kez("identity", "new", "--alg", alg, "--no-passphrase")
    recovery = tmp_path / "recovery.pem"
    init = kez_json(kez, "sigchain", "init", "--new-recovery", str(recovery))
    return init["identity_id"], recovery


def test_full_lifecycle_and_recovery_after_losing_the_primary(kez, tmp_path):
    identity_id, recovery = setup_chain(kez, tmp_path)
    assert recovery.stat().st_mode & 0o777 == 0o600
    gh = kez_json(kez, "sigchain", "add", "GitHub:Alice")
    kez_json(kez, "sigchain", "add", "dns:example.org", "--expires", "30d")
    assert gh["encoded"].startswith("kez:z1:") and gh["subject"] == "github:alice"
    kez_json(kez, "sigchain", "revoke", gh["claim_id"], "--reason", "account sold")
    shown = kez_json(kez, "sigchain", "show")
    assert shown["identity_id"] == identity_id and shown["length"] == 4
    statuses = {c["subject"]: c["status"] for c in shown["claims"]}
    assert statuses == {"github:alice": "revoked", "dns:example.org": "valid"}

    # The primary key file is lost; the recovery key rotates to a new primary.
    (home() / "identities" / "default" / "secret.pem").unlink()
    code, _, err = kez("sigchain", "add", "github:bob")
    assert code == 4 and "secret key" in err
    rotated = kez_json(
        kez, "sigchain", "rotate", "--generate", "--with-recovery", str(recovery), "--no-passphrase"
    )
    assert rotated["signed_by"] != rotated["new_primary"]
    later = kez_json(kez, "sigchain", "add", "bluesky:alice.bsky.social")
    shown = kez_json(kez, "sigchain", "show")
    assert shown["identity_id"] == identity_id  # survives rotation
    assert shown["current_primary"] == rotated["new_primary"]
    assert shown["retired_primaries"][0]["key"] == identity_id
    statuses = {c["subject"]: c["status"] for c in shown["claims"]}
    assert (
        statuses["bluesky:alice.bsky.social"] == "valid" and statuses["dns:example.org"] == "valid"
    )
    assert later["identity_id"] == identity_id
    _, show_identity, _ = kez("identity", "show", "--json")
    assert json.loads(show_identity)["key_id"] == rotated["new_primary"]
    assert json.loads(show_identity)["identity_id"] == identity_id


def test_export_import_export_is_byte_identical(kez, tmp_path, monkeypatch):
    setup_chain(kez, tmp_path, alg="nostr")
    kez_json(kez, "sigchain", "add", "github:alice")
    first = tmp_path / "a.jsonl"
    assert kez("sigchain", "export", str(first))[0] == 0
    monkeypatch.setenv("KEZ_HOME", str(tmp_path / "elsewhere"))
    imported = kez_json(kez, "sigchain", "import", str(first))
    assert imported["length"] == 2
    second = Path(imported["path"])
    assert second.read_bytes() == first.read_bytes()


def test_verify_reports_claims_and_exits_nonzero_for_broken_or_forked(kez, tmp_path):
    setup_chain(kez, tmp_path)
    kez_json(kez, "sigchain", "add", "github:alice")
    good = tmp_path / "good.jsonl"
    kez("sigchain", "export", str(good))
    result = kez_json(kez, "sigchain", "verify", str(good))
    assert result["status"] == "valid" and result["length"] == 2
    assert [set(c) >= {"claim_id", "subject", "status"} for c in result["claims"]] == [True]

    lines = good.read_bytes().splitlines(keepends=True)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(lines[0] + lines[1].replace(b"github:alice", b"github:mallo"))
    code, out, _ = kez("sigchain", "verify", str(broken), "--json")
    assert code == 1
    data = json.loads(out)
    assert data["status"] == "invalid" and data["errors"][0]["seqno"] == 2

    code, _, err = kez("sigchain", "verify", str(tmp_path / "nope.jsonl"))
    assert code == 4


def test_fork_between_two_copies_names_both_links(kez, tmp_path):
    primary = Signer.generate("ed25519")
    base = SigchainBuilder()
    base.claim(primary, create_claim(primary, "github:alice"))
    left = SigchainBuilder.resume(base.lines)
    right = SigchainBuilder.resume(base.lines)
    a = left.claim(primary, create_claim(primary, "dns:a.example"))
    b = right.claim(primary, create_claim(primary, "dns:b.example"))
    (tmp_path / "left.jsonl").write_bytes(left.export())
    (tmp_path / "right.jsonl").write_bytes(right.export())
    code, out, _ = kez(
        "sigchain", "verify", str(tmp_path / "left.jsonl"), str(tmp_path / "right.jsonl"), "--json"
    )
    assert code == 1
    data = json.loads(out)
    assert data["status"] == "fork"
    assert data["fork"]["seqno"] == 2 and set(data["fork"]["link_ids"]) == {a.id, b.id}
    # A copy that is a prefix of another is simply extended, not a fork.
    (tmp_path / "base.jsonl").write_bytes(base.export())
    assert (
        kez_json(
            kez, "sigchain", "verify", str(tmp_path / "base.jsonl"), str(tmp_path / "left.jsonl")
        )["length"]
        == 2
    )
    # Importing a fork refuses and leaves the local copy alone.
    kez("sigchain", "import", str(tmp_path / "left.jsonl"))
    local = home() / "chains" / f"{primary.key_id.replace(':', '-')}.jsonl"
    before = local.read_bytes()
    assert kez("sigchain", "import", str(tmp_path / "right.jsonl"))[0] == 1
    assert local.read_bytes() == before


def test_devices_and_recovery_keys(kez, tmp_path):
    setup_chain(kez, tmp_path)
    kez("identity", "new", "--name", "laptop", "--alg", "nostr", "--no-passphrase")
    added = kez_json(
        kez, "sigchain", "add-device", "--name", "laptop", "--device-identity", "laptop"
    )
    extra = Signer.generate("ed25519")
    kez_json(kez, "sigchain", "add-recovery", extra.key_id)
    shown = kez_json(kez, "sigchain", "show")
    assert shown["devices"] == [{"key": added["device"], "name": "laptop"}]
    assert extra.key_id in shown["recovery_keys"]
    kez_json(kez, "sigchain", "remove-device", added["device"])
    assert kez_json(kez, "sigchain", "show")["devices"] == []
    code, _, err = kez("sigchain", "add-device", "--name", "x")
    assert code == 3 and "exactly one" in err


def test_commands_before_init_say_what_to_do(kez):
    kez("identity", "new", "--no-passphrase")
    code, _, err = kez("sigchain", "add", "github:alice")
    assert code == 4 and "kez sigchain init" in err
    kez_json(kez, "sigchain", "init")
    code, _, err = kez("sigchain", "init")
    assert code == 4 and "already has a sigchain" in err
