"""httpx clients for channels that read over HTTP: cheap to make, reused for a whole run.

kez-core does not depend on httpx; a channel that does calls these (httpx is
imported inside them), so every HTTP channel gets the same three lessons
learnt measuring `benchmarks/graph.py`:

- one SSL context per process (`kez_core.tls`, shared with kez-server's
  clients): building one loads the CA bundle, ~30 ms of CPU, which would
  dominate checking many proofs with a client per fetch;
- no cookie jar: reads need none, and an empty jar still makes httpx wrap
  every response in urllib objects to look for Set-Cookie;
- small pools, leased per fetch from the run's `RunScope`: httpcore's pool
  bookkeeping grows with the square of its connections, so a run keeps one
  small client per fetch in flight (its connections stay alive for the
  run's next fetches) rather than one big shared pool.
"""

from __future__ import annotations

import contextlib
import functools
import http.cookiejar
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..protocols import ChannelContext
from ..tls import ssl_context as ssl_context  # the process's one context (was defined here)

if TYPE_CHECKING:
    import httpx


class NoCookies(http.cookiejar.CookieJar):
    """A jar that keeps nothing (see the module docstring)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def add_cookie_header(self, request: Any) -> None:
        return None


def new_client(timeout: float, *, connections: int = 4, **options: Any) -> httpx.AsyncClient:
    """A client with `connections` kept-alive connections, the shared SSL context and no cookies.

    `options` go to `httpx.AsyncClient` (e.g. `follow_redirects=True`, `headers`).
    """
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        timeout=timeout, verify=ssl_context(), limits=limits, cookies=NoCookies(), **options
    )


async def _close(client: httpx.AsyncClient) -> None:
    await client.aclose()


@contextlib.asynccontextmanager
async def client_for(
    ctx: ChannelContext, channel: str, *, connections: int = 4, **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The client a fetch should use.

    The caller's `ctx.http_client` when it shares one; else a client leased
    from the verification run (`ctx.scope`: kept for the run's next fetches,
    closed when the run ends); else a client for this call alone, closed on
    exit. `channel` names the lease, so channels never share clients.
    """
    if ctx.http_client is not None:
        yield ctx.http_client
    elif ctx.scope is not None:
        make = functools.partial(new_client, ctx.timeout, connections=connections, **options)
        async with ctx.scope.lease((channel, "httpx"), make, _close) as client:
            yield client
    else:
        async with new_client(ctx.timeout, connections=connections, **options) as client:
            yield client
