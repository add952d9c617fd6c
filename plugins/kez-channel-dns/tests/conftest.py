"""Fixtures of the dns channel's suite: a real DNS server on 127.0.0.1 and signing keys."""

from __future__ import annotations

import os

import pytest
from kez_core.keys import Signer
from kez_core.protocols import ChannelContext

from kez_channel_dns.channel import DnsChannel
from kez_channel_dns.testing import DnsTestServer, running_server

# A plugin that does not load must fail the suite, not be skipped (DESIGN.md §1).
os.environ.setdefault("KEZ_STRICT_PLUGINS", "1")

# Generous for a loaded 2-core machine; tests that expect a timeout use a shorter one.
TIMEOUT = 5.0


@pytest.fixture
def dns_server():
    with running_server() as server:
        yield server


@pytest.fixture
def dns_channel() -> DnsChannel:
    return DnsChannel()


@pytest.fixture
def dns_ctx(dns_server: DnsTestServer) -> ChannelContext:
    return ChannelContext(options=dns_server.ctx_options(), timeout=TIMEOUT)


@pytest.fixture
def dns_update_ctx(dns_server: DnsTestServer) -> ChannelContext:
    return ChannelContext(options=dns_server.ctx_options(update=True), timeout=TIMEOUT)


@pytest.fixture(scope="session")
def dns_signer() -> Signer:
    return Signer.generate("ed25519")


@pytest.fixture(scope="session")
def dns_other_signer() -> Signer:
    return Signer.generate("ed25519")
