"""Entry point of the bluesky channel: registers `BlueskyChannel`.

Imported by every command that uses the Registry, so it imports nothing
itself: the light channel class when channels are first needed; httpx and
the atproto SDK only when a proof is fetched or published.
"""

from __future__ import annotations

from kez_core.plugin import hookimpl


@hookimpl
def kez_register_channels():
    from .channel import (
        BlueskyChannel,  # on first use of this kind, not when the plugin is imported
    )

    return [BlueskyChannel()]
