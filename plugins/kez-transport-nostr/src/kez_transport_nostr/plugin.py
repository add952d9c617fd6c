"""Entry point of the nostr transport: registers `NostrTransport` (light; no websockets import)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import kez_core
from kez_core.plugin import DemoServer, DemoSetup, RunningDemo


@kez_core.hookimpl
def kez_register_transports():
    from .transport import (
        NostrTransport,
    )  # on first use of this kind, not when the plugin is imported

    return [NostrTransport()]


#: events/s for the demo's file act on its own loopback relay. The 5/s default is politeness
#: to public relays, and would make the demo's 1 MB take about 18 s.
DEMO_FILE_RATE = 50.0


@kez_core.hookimpl
def kez_demo_servers():
    """`kez demo`'s relay for the nostr transport (the nostr channel's test relay, taking
    events as large as the transport sends); the demo's file act runs over it."""
    return [DemoServer("nostr", "transport", _demo_server, needs=("nostr_relay",), order=20)]


@contextlib.contextmanager
def _demo_server(setup: DemoSetup) -> Iterator[RunningDemo]:
    from kez_channel_nostr.testing import running_server

    from .transport import MAX_ENVELOPE

    # the relay takes what the transport sends (DESIGN §6: content up to 32 KiB), so file chunks fit
    with running_server(max_event_size=MAX_ENVELOPE) as relay:
        options = {"nostr_transport_relays": [relay.url]}
        yield RunningDemo(
            f"nostr relay {relay.url}",
            options=options,
            bulk_options={**options, "nostr_transport_rate": str(DEMO_FILE_RATE)},
            bulk_rate=DEMO_FILE_RATE,
            bulk_note=f"at {DEMO_FILE_RATE:g} events/s (the demo's own loopback relay; 5/s is the default for public relays)",
        )
