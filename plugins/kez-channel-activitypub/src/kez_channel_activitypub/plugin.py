"""Entry point of the `ap` channel (`mastodon:` is an alias).

Imported by every command that uses the Registry, so it imports nothing
itself: the channel class when channels are first needed, httpx when a
proof is fetched or published.
"""

from __future__ import annotations

from kez_core.plugin import hookimpl


@hookimpl
def kez_register_channels():
    from .channel import (
        ActivityPubChannel,  # on first use of this kind, not when the plugin is imported
    )

    return [ActivityPubChannel()]
