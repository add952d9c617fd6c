"""Entry point of the http transport: registers `HttpTransport` (light; httpx loads on use)."""

from __future__ import annotations

import kez_core


@kez_core.hookimpl
def kez_register_transports():
    from .transport import HttpTransport  # on first use of this kind, not when the plugin is imported

    return [HttpTransport()]
