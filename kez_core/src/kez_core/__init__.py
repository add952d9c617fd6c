"""KEZ core: signed identity claims, the plugin seams and the built-in parts.

Plugins import `hookimpl` from here: `@kez_core.hookimpl`.
"""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("kez")

__version__ = "0.1.0"

__all__ = ["hookimpl", "__version__"]
