"""Entry point of the nostr channel: registers `NostrChannel` (light; no websockets import)."""

from __future__ import annotations

from kez_core.plugin import hookimpl


@hookimpl
def kez_register_channels():
    from .channel import NostrChannel  # on first use of this kind, not when the plugin is imported

    return [NostrChannel()]
