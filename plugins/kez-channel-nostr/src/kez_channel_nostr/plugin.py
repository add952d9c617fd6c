"""Entry point of the nostr channel: registers `NostrChannel` (light; no websockets import)."""

from __future__ import annotations

import kez_core

from .channel import NostrChannel


@kez_core.hookimpl
def kez_register_channels():
    return [NostrChannel()]
