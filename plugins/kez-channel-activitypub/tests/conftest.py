"""Fixtures of the ap channel suite: a fresh local Mastodon-shaped server per test."""

from __future__ import annotations

import pytest
from kez_core.keys import Signer
from kez_channel_activitypub.testing import running_server


@pytest.fixture
def ap_server():
    with running_server() as server:
        server.add_account("Alice", token="alice-token")
        yield server


@pytest.fixture
def ap_signer():
    return Signer.generate("ed25519")
