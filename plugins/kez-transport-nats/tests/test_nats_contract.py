"""The generic transport contract (kez_core.testing.TransportContract) against a real nats-server."""

from __future__ import annotations

import pytest
from kez_core.protocols import ChannelContext
from kez_core.testing import TransportContract
from kez_transport_nats.transport import NatsTransport


class TestNatsTransport(TransportContract):
    @pytest.fixture
    def transport(self):
        return NatsTransport()

    @pytest.fixture
    def transport_context(self, nats_url):
        return ChannelContext(options={"nats_url": nats_url}, timeout=5)

    @pytest.fixture
    def unreachable_context(self, closed_port):
        return ChannelContext(options={"nats_url": f"nats://127.0.0.1:{closed_port}"}, timeout=2)
