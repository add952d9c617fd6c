"""Entry point of the nostr channel: registers `NostrChannel` (light; no websockets import)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kez_core.plugin import DemoServer, DemoSetup, RunningDemo, hookimpl


@hookimpl
def kez_register_channels():
    from .channel import NostrChannel  # on first use of this kind, not when the plugin is imported

    return [NostrChannel()]


@hookimpl
def kez_demo_servers():
    """`kez demo`'s nostr relay (nostr-relay from the `testing` extra); the demo identity's
    nostr key is the account, so publishing signs with it."""
    return [DemoServer("nostr", "channel", _demo_server, needs=("nostr_relay",), order=30)]


@contextlib.contextmanager
def _demo_server(setup: DemoSetup) -> Iterator[RunningDemo]:
    from .testing import running_server

    if "nostr" not in setup.keys:
        raise RuntimeError("the demo gave no nostr key for the account")
    pubkey, secret = setup.keys["nostr"]
    with running_server() as server:
        yield RunningDemo(
            f"nostr relay {server.url}",
            options={**server.ctx_options(), "nostr_secret": secret},
            read_options=server.ctx_options(),
            subject=f"nostr:{pubkey}",
        )
