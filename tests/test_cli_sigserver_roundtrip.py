"""The kez-server client commands against the real kez-server under uvicorn on 127.0.0.1.

A user publishes a claim on the (local) GitHub API, pushes the chain to a
kez-server, registers a handle; a stranger with an empty keystore then
verifies `alice@example.org` from the server and the channel alone.
"""

from __future__ import annotations

import json

import pytest
from kez_channel_github.testing import running_server as running_github
from kez_core.keystore import Keystore
from kez_core.registry import default_registry
from kez_core.sigchain import SigchainBuilder

kez_server_testing = pytest.importorskip("kez_server.testing")


def kez_json(kez, *args, expect=0):
    code, out, err = kez(*args, "--json")
    assert code == expect, err
    return json.loads(out)


@pytest.fixture(scope="module")
def sig_server():
    with kez_server_testing.running_server(server_name="example.org") as server:
        yield server


@pytest.fixture(scope="module")
def github():
    with running_github() as server:
        yield server


def publish_identity(kez, github, sig_server):
    kez("identity", "new", "--no-passphrase")
    token = github.token_for("alice")
    published = kez_json(
        kez,
        "claim",
        "publish",
        "github:alice",
        "--github-api",
        github.base_url,
        "--github-token",
        token,
    )
    pushed = kez_json(kez, "sigchain", "publish", "--sig-server", sig_server.url)
    return published, pushed


def test_publish_register_and_a_stranger_verifies_the_handle(
    kez, github, sig_server, tmp_path, monkeypatch
):
    published, pushed = publish_identity(kez, github, sig_server)
    identity_id = pushed["identity_id"]
    assert pushed["servers"][0]["outcome"] == "ok" and pushed["servers"][0]["appended"] == 1
    again = kez_json(kez, "sigchain", "publish", "--sig-server", sig_server.url)
    assert again["servers"][0]["message"] == "already up to date"

    registered = kez_json(kez, "handle", "register", "alice", "--server", sig_server.url)
    assert registered["fqhn"] == "alice@example.org" and registered["primary"] == identity_id
    code, _, err = kez("handle", "register", "alice", "--server", sig_server.url)
    assert code == 3 and "registration refused" in err

    monkeypatch.setenv("KEZ_HOME", str(tmp_path / "stranger"))
    monkeypatch.setenv("KEZ_HANDLE_SERVER", sig_server.url)
    found = kez_json(kez, "handle", "lookup", "alice@example.org")
    assert found["sigchain_url"].startswith(sig_server.url)
    report = kez_json(kez, "verify", "alice@example.org", "--github-api", github.base_url)
    result = report["results"][0]
    assert report["ok"] is True and result["identity_id"] == identity_id
    assert result["handle"]["fqhn"] == "alice@example.org"
    assert [(c["subject"], c["status"]) for c in result["claims"]] == [("github:alice", "valid")]
    assert result["claims"][0]["claim_id"] == published["claim_id"]


def test_unknown_handle_exits_1(kez, sig_server):
    code, _, err = kez("verify", "nobody@example.org", "--handle-server", sig_server.url)
    assert code == 1 and "not registered" in err


def test_pull_brings_the_server_copy_home(kez, github, sig_server, tmp_path, monkeypatch):
    _, pushed = publish_identity(kez, github, sig_server)
    identity_id = pushed["identity_id"]
    monkeypatch.setenv("KEZ_HOME", str(tmp_path / "other"))
    pulled = kez_json(kez, "sigchain", "pull", identity_id, "--sig-server", sig_server.url)
    assert pulled["length"] == 1 and pulled["servers"][0]["status"] == "read"
    report = kez_json(kez, "verify", identity_id, "--github-api", github.base_url)
    assert report["ok"] is True


def test_a_conflicting_chain_is_reported_as_a_fork_with_both_link_ids(kez, github, sig_server):
    _, pushed = publish_identity(kez, github, sig_server)
    store = Keystore(registry=default_registry())
    record = store.get(None)
    signer = store.signer(record.name, lambda: None)
    path = store.chain_path(record.identity_id)
    stored = path.read_bytes().splitlines(keepends=True)
    # Rewrite history locally: seqno 1 becomes a different claim.
    from kez_core.claim import create_claim

    builder = SigchainBuilder(registry=store.registry)
    builder.claim(signer, create_claim(signer, "github:alice-other", registry=store.registry))
    path.write_bytes(b"".join(builder.lines))
    result = kez_json(kez, "sigchain", "publish", "--sig-server", sig_server.url, expect=1)[
        "servers"
    ][0]
    assert result["outcome"] == "fork"
    assert len(result["link_ids"]) == 2
    code, out, _ = kez("sigchain", "verify", str(path), "--sig-server", sig_server.url, "--json")
    assert code == 1 and json.loads(out)["status"] == "fork"
    assert stored  # the server still serves the original chain; our local rewrite is what conflicts


def test_verify_merges_a_server_copy_that_is_longer(kez, github, sig_server, tmp_path, monkeypatch):
    _, pushed = publish_identity(kez, github, sig_server)
    identity_id = pushed["identity_id"]
    store = Keystore(registry=default_registry())
    first_line = store.chain_path(identity_id).read_bytes()
    kez_json(kez, "sigchain", "add", "github:alice2")
    kez_json(kez, "sigchain", "publish", "--sig-server", sig_server.url)
    short = tmp_path / "short.jsonl"
    short.write_bytes(first_line)
    data = kez_json(kez, "sigchain", "verify", str(short), "--sig-server", sig_server.url)
    assert data["status"] == "valid" and data["length"] == 2
    assert data["servers"] == [{"server": sig_server.url, "status": "read", "links": 2}]


def test_a_long_chain_is_pushed_in_batches_under_the_body_cap(kez, github, sig_server, monkeypatch):
    from kez_core import sigserver_client as sigservers

    monkeypatch.setattr(sigservers, "PUSH_BATCH_BYTES", 2000)  # a few links per request
    kez("identity", "new", "--no-passphrase")
    kez_json(kez, "sigchain", "init")
    for i in range(6):
        kez_json(kez, "sigchain", "add", f"github:user{i}")
    assert (
        len(
            sigservers._batches(
                Keystore(registry=default_registry())
                .chain_path(kez_json(kez, "sigchain", "show")["identity_id"])
                .read_bytes()
                .splitlines(keepends=True)
            )
        )
        > 2
    )
    first = kez_json(kez, "sigchain", "publish", "--sig-server", sig_server.url)["servers"][0]
    assert first["outcome"] == "ok" and first["appended"] == 6 and first["head_seqno"] == 6
    again = kez_json(kez, "sigchain", "publish", "--sig-server", sig_server.url)["servers"][0]
    assert again["appended"] == 0 and again["message"] == "already up to date"


def test_a_handle_follows_its_identity_through_a_rotation(
    kez, github, sig_server, tmp_path, monkeypatch
):
    _, pushed = publish_identity(kez, github, sig_server)
    identity_id = pushed["identity_id"]
    first = kez_json(kez, "handle", "register", "carol", "--server", sig_server.url)
    assert first["moved"] is False and first["identity"] == first["primary"] == identity_id
    new_primary = kez_json(kez, "sigchain", "rotate", "--generate")["new_primary"]
    kez_json(kez, "sigchain", "publish", "--sig-server", sig_server.url)
    home = str(tmp_path / "stranger")

    def stranger_verifies() -> dict:
        with monkeypatch.context() as m:
            m.setenv("KEZ_HOME", home)
            m.setenv("KEZ_HANDLE_SERVER", sig_server.url)
            return kez_json(kez, "verify", "carol@example.org", "--github-api", github.base_url)

    # registered before the rotation: still good, like a claim signed before it
    before = stranger_verifies()
    assert before["ok"] is True and before["results"][0]["handle"]["primary"] == identity_id

    moved = kez_json(kez, "handle", "register", "carol", "--server", sig_server.url)
    assert moved["moved"] is True and moved["pushed"]["outcome"] == "ok"
    assert moved["primary"] == new_primary != identity_id and moved["identity"] == identity_id
    after = stranger_verifies()["results"][0]
    assert after["identity_id"] == identity_id and after["handle"]["primary"] == new_primary
    assert [(c["subject"], c["status"]) for c in after["claims"]] == [("github:alice", "valid")]
