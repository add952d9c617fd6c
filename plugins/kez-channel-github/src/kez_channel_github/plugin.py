"""Entry point of the github channel: registers `GitHubChannel` (light imports only)."""

from __future__ import annotations

import kez_core

from .channel import GitHubChannel


@kez_core.hookimpl
def kez_register_channels():
    return [GitHubChannel()]
