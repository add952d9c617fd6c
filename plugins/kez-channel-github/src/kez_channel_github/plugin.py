"""Entry point of the github channel (filled in by the channel's implementation)."""

from __future__ import annotations

import kez_core


@kez_core.hookimpl
def kez_register_channels():
    return []
