"""Entry point of the bluesky channel: registers `BlueskyChannel`.

Imported by every command that uses the Registry, so it imports nothing
itself: the light channel class when channels are first needed; httpx and
the atproto SDK only when a proof is fetched or published.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kez_core.plugin import DemoServer, DemoSetup, RunningDemo, hookimpl


@hookimpl
def kez_register_channels():
    from .channel import (
        BlueskyChannel,  # on first use of this kind, not when the plugin is imported
    )

    return [BlueskyChannel()]


@hookimpl
def kez_demo_servers():
    """`kez demo`'s atproto PDS + PLC double (starlette/uvicorn from the `testing` extra)."""
    return [
        DemoServer("bluesky", "channel", _demo_server, needs=("starlette", "uvicorn"), order=40)
    ]


@contextlib.contextmanager
def _demo_server(setup: DemoSetup) -> Iterator[RunningDemo]:
    from .testing import running_server

    with running_server() as server:
        handle = f"{setup.account}.test"
        server.add_account(handle)
        yield RunningDemo(
            f"atproto PDS + PLC {server.base_url}",
            options=server.ctx_options(handle),
            read_options=server.ctx_options(),
            subject=f"bluesky:{handle}",
        )
