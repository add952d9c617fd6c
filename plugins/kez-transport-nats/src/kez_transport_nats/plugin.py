"""Entry point of the nats transport: registers `NatsTransport` (light; no nats-py import)."""

from __future__ import annotations

import kez_core

from .transport import NatsTransport


@kez_core.hookimpl
def kez_register_transports():
    return [NatsTransport()]
