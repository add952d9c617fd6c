"""Entry point of the nats transport: registers `NatsTransport` (light; no nats-py import)."""

from __future__ import annotations

import kez_core


@kez_core.hookimpl
def kez_register_transports():
    from .transport import NatsTransport  # on first use of this kind, not when the plugin is imported

    return [NatsTransport()]
