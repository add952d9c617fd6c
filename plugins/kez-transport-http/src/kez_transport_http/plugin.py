"""Entry point of the http transport: registers `HttpTransport` (light; httpx loads on use)."""

from __future__ import annotations

import kez_core

from .transport import HttpTransport


@kez_core.hookimpl
def kez_register_transports():
    return [HttpTransport()]
