"""Fixtures of the bluesky channel suite: a fake PDS + PLC, new to each test; signers."""

from __future__ import annotations


import pytest
from kez_channel_bluesky.channel import BlueskyChannel
from kez_channel_bluesky.testing import running_server
from kez_core.keys import Signer
from kez_core.protocols import ChannelContext


@pytest.fixture(scope="module")
def _bsky_instance():
    with running_server() as server:
        yield server


@pytest.fixture
def bsky_server(_bsky_instance):
    """The module's fake PDS + PLC, reset to a new one's state (no accounts, faults or requests).

    (Starting and stopping one per test cost ~0.2 s each, most of it uvicorn's shutdown.)
    """
    _bsky_instance.reset()
    return _bsky_instance


@pytest.fixture
def bsky_channel() -> BlueskyChannel:
    return BlueskyChannel()


@pytest.fixture
def bsky_ctx(bsky_server) -> ChannelContext:
    return ChannelContext(options=bsky_server.ctx_options(), timeout=5.0)


@pytest.fixture(scope="session")
def bsky_signer() -> Signer:
    return Signer.generate("ed25519")


@pytest.fixture(scope="session")
def bsky_other_signer() -> Signer:
    return Signer.generate("nostr")


@pytest.fixture
def bsky_closed_url(closed_port) -> str:
    """A 127.0.0.1 URL where connections are refused (kez_core's `closed_port` fixture)."""
    return f"http://127.0.0.1:{closed_port}"
