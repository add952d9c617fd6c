"""Fixtures of the github channel tests: one fake GitHub per module, cleared per test."""

from __future__ import annotations

import pytest

from kez_channel_github.testing import FakeGitHub, running_server


@pytest.fixture(scope="module")
def github_server():
    with running_server() as server:
        yield server


@pytest.fixture
def github(github_server: FakeGitHub) -> FakeGitHub:
    github_server.clear()
    github_server.latency = 0.0
    github_server.truncate_bytes = 1_000_000
    github_server.enforce_rate_limits = False
    github_server.rate_limits = {"unauthenticated": 60, "authenticated": 5000}
    return github_server
