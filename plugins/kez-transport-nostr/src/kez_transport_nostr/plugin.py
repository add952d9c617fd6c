"""Entry point of the nostr transport: registers `NostrTransport` (light; no websockets import)."""

from __future__ import annotations

import kez_core

from .transport import NostrTransport


@kez_core.hookimpl
def kez_register_transports():
    return [NostrTransport()]
