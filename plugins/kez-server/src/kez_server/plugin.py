"""Entry point `kez-server` of the `kez` group: offers `kez demo` a local kez-server.

Imported whenever the registry loads its plugins, so it imports nothing
itself: the server (starlette, uvicorn, SQLite) starts only in `kez demo`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kez_core.plugin import DemoServer, DemoSetup, RunningDemo, hookimpl


@hookimpl
def kez_demo_servers():
    """A real kez-server (SQLite in a temporary folder) on 127.0.0.1, for handles, chains and inboxes."""
    return [DemoServer("kez-server", "sig_server", _demo_server, needs=("starlette", "uvicorn"))]


@contextlib.contextmanager
def _demo_server(setup: DemoSetup) -> Iterator[RunningDemo]:
    from .testing import running_server

    with running_server(server_name=setup.server_name) as server:
        yield RunningDemo(
            f"kez-server {server.url} (handles @{server.server_name}, SQLite)",
            url=server.url,
            server_name=server.server_name,
        )
