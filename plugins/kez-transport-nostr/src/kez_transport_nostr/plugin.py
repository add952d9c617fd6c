"""Entry point of the nostr transport: registers `NostrTransport` (light; no websockets import)."""

from __future__ import annotations

import kez_core


@kez_core.hookimpl
def kez_register_transports():
    from .transport import NostrTransport  # on first use of this kind, not when the plugin is imported

    return [NostrTransport()]
