"""Where to send to a recipient (NIP-65), and publishing one's own relay list and kind 0.

*Decision* (spec section 12, "nostr relays"): a KEZ identity has relays
on nostr only through a nostr key: its primary when that is a `nostr:` key,
or a `nostr:` subject it claims. The owner of such a key publishes, signed
by it, a kind-10002 list whose read relays are the relays it listens on
(`--transport-relay`), and a minimal kind 0 (seeds 000: some relays refuse
writes from keys without a profile). A sender looks up the kind-10002
lists of the recipient's nostr keys on its own relays and sends to their
read relays (at most `READ_RELAYS_PER_KEY` each, NIP-65's "2-4") as well
as its own relays, so a recipient without a list is still reached where it
was reached before. The messaging layer, which knows the recipient's
chain, calls `recipient_relays` and passes the result as the send's
`nostr_transport_relays`; the transport's `send` itself stays
routing-id-only and never learns who the recipient is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from kez_core.protocols import ChannelContext

from .options import RELAYS_OPTION, relay_urls

READ_RELAYS_PER_KEY = 4
CACHE_SECONDS = 600.0  # a recipient's relays found are reused this long (per process)
MISS_SECONDS = 60.0  # ... and "no list found" this long, so a list published meanwhile is seen soon
_found: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[float, list[str]]] = {}


def _pubkey_hex(key: str) -> str | None:
    """The hex of `nostr:<hex>` (or bare hex); None for anything else (Ed25519 keys have no relays)."""
    text = key[len("nostr:") :] if key.startswith("nostr:") else key
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text
    return None


async def recipient_relays(nostr_keys: Iterable[str], ctx: ChannelContext) -> list[str]:
    """The read relays of the keys' NIP-65 lists (found on our relays), then our relays; no duplicates."""
    from kez_channel_nostr.account import fetch_relay_list

    ours = relay_urls(ctx)
    keys = list(dict.fromkeys(k for k in map(_pubkey_hex, nostr_keys) if k))
    lists = await asyncio.gather(*(fetch_relay_list(ours, key, ctx.timeout) for key in keys))
    theirs = [
        url for found in lists if found is not None for url in found.read[:READ_RELAYS_PER_KEY]
    ]
    return list(dict.fromkeys([*theirs, *ours]))


def chain_nostr_keys(chain: Any) -> list[str]:
    """The nostr keys of a KEZ identity (a `ChainState`): its primary when that is a `nostr:` key,
    and the `nostr:` subjects of its claims not revoked; no duplicates."""
    keys = [chain.current_primary] if str(chain.current_primary).startswith("nostr:") else []
    keys += [c.subject for c in chain.active_claims() if str(c.subject).startswith("nostr:")]
    return list(dict.fromkeys(k for k in keys if _pubkey_hex(k)))


async def recipient_options(chain: Any, ctx: ChannelContext) -> dict[str, Any]:
    """The send options for one recipient: `nostr_transport_relays` = `recipient_relays` of the
    chain's nostr keys (cached, see `CACHE_SECONDS`); {} for a chain without nostr keys."""
    import time

    keys = chain_nostr_keys(chain)
    if not keys:
        return {}
    ours = relay_urls(ctx)
    slot = (tuple(keys), tuple(ours))
    hit = _found.get(slot)
    if hit is not None and time.monotonic() < hit[0]:
        urls = hit[1]
    else:
        urls = await recipient_relays(keys, ctx)
        _found[slot] = (time.monotonic() + (CACHE_SECONDS if urls != ours else MISS_SECONDS), urls)
    return {RELAYS_OPTION.name: tuple(urls)}


async def publish_account(
    secret: bytes, ctx: ChannelContext, *, name: str = "", about: str = ""
) -> dict[str, Any]:
    """Publish the kind-10002 list (read and write = our relays) and a minimal kind 0 to our relays.

    Returns `{"relay_list": [PublishReply…], "metadata": [PublishReply…]}`.
    """
    from kez_channel_nostr.account import metadata_event, publish, relay_list_event

    ours = relay_urls(ctx)
    relay_list = relay_list_event(secret, read=ours, write=ours)
    profile = metadata_event(secret, name=name, about=about)
    lists, metadata = await asyncio.gather(
        publish(ours, relay_list, ctx.timeout, secret), publish(ours, profile, ctx.timeout, secret)
    )
    return {"relay_list": lists, "metadata": metadata}
