"""Fixtures of the nostr transport tests: real `nostr-relay` processes on 127.0.0.1, one session.

`transport_relay` is a relay behind the channel's fault front
(`kez_channel_nostr.testing.running_server`: refusals, silence and injected
forged events on demand); `second_relay` is a plain second relay. Both take
events with content up to 64 KiB, so a 32 KiB envelope fits.
"""

from __future__ import annotations

import pytest
from kez_channel_nostr.testing import running_relay, running_server

MAX_EVENT_SIZE = 64 * 1024


@pytest.fixture(scope="session")
def _transport_session_server():
    with running_server(max_event_size=MAX_EVENT_SIZE) as server:
        yield server


@pytest.fixture
def transport_relay(_transport_session_server):
    """The session's fronted relay, with faults and injected events reset around each test."""
    _transport_session_server.reset()
    yield _transport_session_server
    _transport_session_server.reset()


@pytest.fixture(scope="session")
def second_relay():
    with running_relay(max_event_size=MAX_EVENT_SIZE) as relay:
        yield relay
