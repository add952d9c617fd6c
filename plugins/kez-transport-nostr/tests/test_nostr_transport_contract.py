"""The generic transport contract (kez_core.testing.TransportContract) against a real relay."""

from __future__ import annotations

import pytest
from kez_core.protocols import ChannelContext
from kez_core.testing import TransportContract
from kez_transport_nostr.transport import NostrTransport


class TestNostrTransport(TransportContract):
    @pytest.fixture
    def transport(self):
        return NostrTransport()

    @pytest.fixture
    def transport_context(self, transport_relay):
        return ChannelContext(options={"nostr_transport_relays": (transport_relay.url,)}, timeout=5)

    @pytest.fixture
    def unreachable_context(self, transport_relay):
        return ChannelContext(
            options={"nostr_transport_relays": (transport_relay.refused_url,)}, timeout=2
        )
