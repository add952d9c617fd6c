"""Fixtures of the kez-server tests: a real server under uvicorn, on SQLite and on PostgreSQL.

PostgreSQL comes from PyPI `pgserver` (postgres binaries inside the wheel):
one cluster per test session, a fresh database per test module. As root
pgserver runs postgres as a `pgserver` system user it creates.
"""

from __future__ import annotations

import warnings

import httpx
from kez_core.tls import ssl_context  # one CA bundle load per process
import pytest
from kez_server.testing import running_server
from server_helpers import new_database


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set
        import pgserver

    data = tmp_path_factory.mktemp("postgres") / "data"
    cluster = pgserver.get_server(data, cleanup_mode="delete")
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request, tmp_path_factory) -> str:
    """A fresh database for this module: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path_factory.mktemp("sqlite") / "kez.db")
    return new_database(request.getfixturevalue("pg_cluster"))


@pytest.fixture(scope="module")
def server(db_url):
    with running_server(db=db_url, server_name="example.org") as running:
        yield running


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30, verify=ssl_context()) as http:
        yield http
