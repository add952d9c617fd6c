"""Small helpers shared by the nostr transport tests (a unique module name: tests share sys.path)."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from typing import Any

from kez_core.protocols import ChannelContext


def rid() -> str:
    """A fresh routing id, so tests sharing one relay never see each other's events."""
    return secrets.token_hex(32)


def envelope(size: int = 1437) -> bytes:
    """Envelope-shaped ASCII (`kez:e1:` + base64url) of `size` bytes."""
    body = base64.urlsafe_b64encode(os.urandom(size)).rstrip(b"=")
    return (b"kez:e1:" + body)[:size]


def ctx(*urls: str, timeout: float = 5, since: Any = None) -> ChannelContext:
    options: dict[str, Any] = {"nostr_transport_relays": tuple(urls)}
    if since is not None:
        options["nostr_transport_since"] = since
    return ChannelContext(options=options, timeout=timeout)


async def take(inbox: Any, timeout: float = 5) -> bytes:
    """The next envelope from `inbox` (TimeoutError when none comes in time)."""
    return await asyncio.wait_for(inbox.__anext__(), timeout)


async def drain(inbox: Any, quiet: float = 0.5) -> list[bytes]:
    """Everything `inbox` yields until it has been quiet for `quiet` seconds."""
    got: list[bytes] = []
    while True:
        try:
            got.append(await take(inbox, quiet))
        except TimeoutError:
            return got


async def until_live(inbox: Any, count: int, timeout: float = 5) -> None:
    """Wait until `count` relays are live (so each has sent its stored events)."""
    async with asyncio.timeout(timeout):
        while len(inbox.live_relays) < count:
            await asyncio.sleep(0.01)
