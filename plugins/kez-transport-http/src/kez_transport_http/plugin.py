"""Entry point of the http transport: registers `HttpTransport` (light; httpx loads on use)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import kez_core
from kez_core.plugin import DemoServer, DemoSetup, RunningDemo


@kez_core.hookimpl
def kez_register_transports():
    from .transport import (
        HttpTransport,
    )  # on first use of this kind, not when the plugin is imported

    return [HttpTransport()]


@kez_core.hookimpl
def kez_demo_servers():
    """The http transport runs over the demo's kez-server (its inbox): nothing of its own to start."""
    return [DemoServer("http", "transport", _demo_server, order=30)]


@contextlib.contextmanager
def _demo_server(setup: DemoSetup) -> Iterator[RunningDemo]:
    if setup.sig_server_url is None:
        raise RuntimeError("the http transport needs the demo's kez-server, which is not running")
    yield RunningDemo(
        f"kez-server inbox {setup.sig_server_url}",
        options={"inbox_server": setup.sig_server_url},
        handle_option="inbox_handle",
    )
