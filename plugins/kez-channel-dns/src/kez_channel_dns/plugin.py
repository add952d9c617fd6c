"""Entry point of the dns channel: registers `DnsChannel` (light: dnspython loads on first use)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kez_core.plugin import DemoServer, DemoSetup, RunningDemo, hookimpl


@hookimpl
def kez_register_channels():
    from .channel import DnsChannel  # on first use of this kind, not when the plugin is imported

    return [DnsChannel()]


@hookimpl
def kez_demo_servers():
    """`kez demo`'s DNS server (dnslib, from the `testing` extra: imported only when started)."""
    return [DemoServer("dns", "channel", _demo_server, needs=("dnslib",), order=10)]


@contextlib.contextmanager
def _demo_server(setup: DemoSetup) -> Iterator[RunningDemo]:
    from .testing import running_server

    with running_server() as server:
        yield RunningDemo(
            f"DNS server {server.address} (RFC 2136 updates with TSIG)",
            options=server.ctx_options(update=True),
            read_options=server.ctx_options(),
            subject=f"dns:{setup.account}.example.org",
        )
