"""Entry point of the bluesky channel: registers `BlueskyChannel`.

Only the light channel class is imported here; `kez --help` imports this
module and must not pull in httpx or the atproto SDK.
"""

from __future__ import annotations

import kez_core

from .channel import BlueskyChannel


@kez_core.hookimpl
def kez_register_channels():
    return [BlueskyChannel()]
