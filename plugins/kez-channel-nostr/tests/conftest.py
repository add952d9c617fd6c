"""Fixtures of the nostr channel tests: one real relay (behind the fault front) per session."""

from __future__ import annotations

import pytest

from kez_channel_nostr.testing import running_server


@pytest.fixture(scope="session")
def _nostr_session_server():
    with running_server() as server:
        yield server


@pytest.fixture
def nostr_server(_nostr_session_server):
    """The session's relay, with faults, injected events and latency reset after each test."""
    _nostr_session_server.reset()
    yield _nostr_session_server
    _nostr_session_server.reset()
