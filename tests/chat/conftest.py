"""Fixtures of the messaging-service tests: people made with the real CLI, and their services."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "messaging"))

from message_cli_helpers import kez, kez_json  # noqa: E402


def make_people(capsys, tmp_path, names):
    people = {}
    for name in names:
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
    for me in names:
        for other in names:
            if other != me:
                kez_json(
                    capsys, people[me]["home"], "sigchain", "import", str(people[other]["chain"])
                )
    return people


@pytest.fixture
def three(capsys, tmp_path, monkeypatch):
    """Alice, Bob and Carol: identities, chains, inbox keys; every chain known to everyone."""
    monkeypatch.setenv("KEZ_PASSPHRASE", "")
    return make_people(capsys, tmp_path, ["alice", "bob", "carol"])
