"""Entry point of the `ap` channel (`mastodon:` is an alias).

Imported by `kez --help` and `kez plugins`: it imports only the light
channel class; httpx is imported when a proof is fetched or published.
"""

from __future__ import annotations

import kez_core

from .channel import ActivityPubChannel


@kez_core.hookimpl
def kez_register_channels():
    return [ActivityPubChannel()]
