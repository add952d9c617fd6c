"""Fixtures of the messaging tests: two people with identities, chains and inbox keys."""

from __future__ import annotations

import pytest
from message_cli_helpers import kez, kez_json


@pytest.fixture
def two(capsys, tmp_path, monkeypatch):
    """Alice and Bob, each with an identity, a chain and an inbox key; chains exchanged."""
    monkeypatch.setenv("KEZ_PASSPHRASE", "")
    people = {}
    for name in ("alice", "bob"):
        home = tmp_path / name
        kez_json(capsys, home, "identity", "new", "--name", name, "--no-passphrase")
        kez_json(capsys, home, "sigchain", "init")
        added = kez_json(capsys, home, "sigchain", "add-inbox")
        chain = tmp_path / f"{name}.jsonl"
        kez(capsys, home, "sigchain", "export", str(chain))
        people[name] = {
            "home": home,
            "chain": chain,
            "inbox": added["inbox_key"],
            "id": added["identity_id"],
        }
    for me, other in (("alice", "bob"), ("bob", "alice")):
        kez_json(capsys, people[me]["home"], "sigchain", "import", str(people[other]["chain"]))
    return people
