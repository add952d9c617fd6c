"""Fixtures of the http transport tests: a real kez-server under uvicorn on 127.0.0.1 (SQLite)."""

from __future__ import annotations


import httpx
import pytest
from kez_core.keys import Signer
from kez_core.protocols import ChannelContext
from kez_server.testing import running_server
from kez_transport_http.testing import register_handle


@pytest.fixture(scope="session")
def kez_server():
    # no per-IP message limit: the contract posts bursts from one address
    with running_server(message_burst=0) as server:
        yield server


@pytest.fixture(scope="session")
def owner(kez_server):
    """(signer, handle) of a handle registered on the server: the inbox the tests use."""
    signer = Signer.generate()
    return signer, register_handle(kez_server.url, signer, kez_server.server_name)


@pytest.fixture
def context(kez_server, owner):
    signer, handle = owner
    return ChannelContext(
        options={"inbox_server": kez_server.url, "inbox_handle": handle, "signer": signer},
        timeout=5,
    )


@pytest.fixture
def client(kez_server):
    with httpx.Client(base_url=kez_server.url) as http:
        yield http
