"""Fixtures of the ap channel suite: a local Mastodon-shaped server, new to each test."""

from __future__ import annotations

import pytest
from kez_core.keys import Signer
from kez_channel_activitypub.testing import running_server


@pytest.fixture(scope="module")
def _ap_instance():
    with running_server() as server:
        yield server


@pytest.fixture
def ap_server(_ap_instance):
    """The module's server, reset to a new one's state, with Alice (token `alice-token`).

    (Starting and stopping a server per test cost ~0.2 s each, most of it uvicorn's shutdown.)
    """
    _ap_instance.reset()
    _ap_instance.add_account("Alice", token="alice-token")
    return _ap_instance


@pytest.fixture
def ap_signer():
    return Signer.generate("ed25519")
