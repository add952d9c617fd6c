"""Fixtures of the nats transport tests: real `nats-server` processes on 127.0.0.1, one per kind, per session."""

from __future__ import annotations

import socket

import pytest
from kez_transport_nats.testing import running_nats_server
from nats_helpers import PERMISSIONS_CONFIG, SMALL_MAX_PAYLOAD, TOKEN


@pytest.fixture(scope="session")
def nats_server():
    """An open server (no authentication), default max_payload (1 MiB)."""
    with running_nats_server() as server:
        yield server


@pytest.fixture(scope="session")
def nats_url(nats_server):
    return nats_server.url


@pytest.fixture(scope="session")
def nats_token_server():
    """A server started with `--auth TOKEN`."""
    with running_nats_server(token=TOKEN) as server:
        yield server


@pytest.fixture(scope="session")
def nats_small_server():
    """A server whose max_payload (4096) is smaller than the largest envelope."""
    with running_nats_server(config=f"max_payload: {SMALL_MAX_PAYLOAD}\n") as server:
        yield server


@pytest.fixture(scope="session")
def nats_permissions_server():
    with running_nats_server(config=PERMISSIONS_CONFIG) as server:
        yield server


@pytest.fixture
def silent_url():
    """A listener that accepts TCP connections (the kernel's backlog) and never says INFO."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"nats://127.0.0.1:{sock.getsockname()[1]}"
