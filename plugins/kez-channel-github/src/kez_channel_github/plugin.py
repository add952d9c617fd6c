"""Entry point of the github channel: registers `GitHubChannel` (light imports only)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kez_core.plugin import DemoServer, DemoSetup, RunningDemo, hookimpl


@hookimpl
def kez_register_channels():
    from .channel import GitHubChannel  # on first use of this kind, not when the plugin is imported

    return [GitHubChannel()]


@hookimpl
def kez_demo_servers():
    """`kez demo`'s GitHub REST API double (starlette/uvicorn from the `testing` extra)."""
    return [DemoServer("github", "channel", _demo_server, needs=("starlette", "uvicorn"), order=20)]


@contextlib.contextmanager
def _demo_server(setup: DemoSetup) -> Iterator[RunningDemo]:
    from .testing import running_server

    with running_server() as server:
        token = server.token_for(setup.account)
        yield RunningDemo(
            f"GitHub REST API {server.base_url}",
            options=server.ctx_options(token),
            read_options=server.ctx_options(),
            subject=f"github:{setup.account}",
        )
