"""One verifying SSL context per process, for every httpx client kez-core makes.

Building a context loads the CA bundle, about 30 ms of CPU: more than a
request to a nearby server takes. `kez_core.verifier.http` (the channels'
clients) and `kez_core.sigserver_client` (kez-server's) share this one. It
imports nothing until first called (httpx then, which the caller is about to
use anyway), so it costs a command that never makes a client nothing.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once per process."""
    import httpx

    return httpx.create_ssl_context()
