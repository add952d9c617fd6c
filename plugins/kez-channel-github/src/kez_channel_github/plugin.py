"""Entry point of the github channel: registers `GitHubChannel` (light imports only)."""

from __future__ import annotations

import kez_core


@kez_core.hookimpl
def kez_register_channels():
    from .channel import GitHubChannel  # on first use of this kind, not when the plugin is imported

    return [GitHubChannel()]
