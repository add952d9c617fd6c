"""The generic transport contract (kez_core.testing.TransportContract) against a real kez-server."""

from __future__ import annotations

import base64
import os

import pytest
from kez_core.messaging import BUCKETS
from kez_core.messaging.envelope import MAX_ENVELOPE_TEXT
from kez_core.protocols import ChannelContext
from kez_core.testing import TransportContract
from kez_transport_http.transport import HttpTransport


class TestHttpTransport(TransportContract):
    """The server checks that an envelope is one (spec section 12), so the test envelopes here
    are well formed: random bytes of a sealed size, the largest bucket for the largest one."""

    @staticmethod
    def envelope(size: int = 1437) -> bytes:
        fitting = [b for b in BUCKETS if 7 + -(-(48 + b) * 4 // 3) <= size]
        if not fitting or size > MAX_ENVELOPE_TEXT:  # refused for its length alone
            return b"kez:e1:" + b"A" * (size - 7)
        raw = os.urandom(48 + fitting[-1])
        return b"kez:e1:" + base64.urlsafe_b64encode(raw).rstrip(b"=")

    @pytest.fixture
    def transport(self):
        return HttpTransport()

    @pytest.fixture
    def transport_context(self, context):
        return context

    @pytest.fixture
    def unreachable_context(self, closed_port, owner):
        signer, handle = owner
        options = {
            "inbox_server": f"http://127.0.0.1:{closed_port}",
            "inbox_handle": handle,
            "signer": signer,
        }
        return ChannelContext(options=options, timeout=2)
