"""Entry point of the dns channel: registers `DnsChannel` (light: dnspython loads on first use)."""

from __future__ import annotations

import kez_core

from .channel import DnsChannel


@kez_core.hookimpl
def kez_register_channels():
    return [DnsChannel()]
