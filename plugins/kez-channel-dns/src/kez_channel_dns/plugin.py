"""Entry point of the dns channel: registers `DnsChannel` (light: dnspython loads on first use)."""

from __future__ import annotations

from kez_core.plugin import hookimpl


@hookimpl
def kez_register_channels():
    from .channel import DnsChannel  # on first use of this kind, not when the plugin is imported

    return [DnsChannel()]
