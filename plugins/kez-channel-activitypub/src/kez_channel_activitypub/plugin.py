"""Entry point of the `ap` channel (`mastodon:` is an alias).

Imported by every command that uses the Registry, so it imports nothing
itself: the channel class when channels are first needed, httpx when a
proof is fetched or published.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kez_core.plugin import DemoServer, DemoSetup, RunningDemo, hookimpl


@hookimpl
def kez_register_channels():
    from .channel import (
        ActivityPubChannel,  # on first use of this kind, not when the plugin is imported
    )

    return [ActivityPubChannel()]


@hookimpl
def kez_demo_servers():
    """`kez demo`'s Mastodon API double (starlette/uvicorn from the `testing` extra)."""
    return [DemoServer("ap", "channel", _demo_server, needs=("starlette", "uvicorn"), order=50)]


@contextlib.contextmanager
def _demo_server(setup: DemoSetup) -> Iterator[RunningDemo]:
    import secrets

    from .testing import DEFAULT_DOMAIN, running_server

    with running_server() as server:
        token = secrets.token_urlsafe(24)
        server.add_account(setup.account, token=token)
        yield RunningDemo(
            f"Mastodon API {server.base_url}",
            options=server.ctx_options(token),
            read_options=server.ctx_options(),
            subject=f"ap:{setup.account}@{DEFAULT_DOMAIN}",
        )
