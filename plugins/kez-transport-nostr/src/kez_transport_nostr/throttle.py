"""Sending is throttled per relay: at most `rate` events a second (seeds 000: 5/s).

Public relays drop or ban clients that publish in bursts, and a chunked
file is hundreds of events. Each relay URL gets one token bucket per
process: `rate` tokens, refilled at `rate` per second, one token per
event. A send waits for its token rather than failing, so a long file
takes longer but arrives. The rate is `--nostr-rate` / `KEZ_NOSTR_RATE`.

The clock and the sleep are injectable, so tests check the spacing
without waiting on wall time.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from kez_core.errors import DecodeError
from kez_core.protocols import ChannelContext, ChannelOption

DEFAULT_RATE = 5

RATE_OPTION = ChannelOption(
    name="nostr_transport_rate",
    flag="--nostr-rate",
    env="KEZ_NOSTR_RATE",
    help="At most this many envelope events a second to each nostr relay "
    "(a bucket of that many, refilled at that rate); default 5.",
    default=str(DEFAULT_RATE),
)


class TokenBucket:
    """`rate` tokens, refilled continuously at `rate` per second; `take` waits for one."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._stamp = clock()
        # Takers queue up in order; one sleeps at a time, so concurrent sends
        # are spaced out instead of all waking at once for the same token.
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self) -> float:
        """Wait until a token is there, then use it; the seconds waited (0.0 when one was there)."""
        start = self._clock()
        queued = self._lock.locked()  # others are waiting for a token before us
        async with self._lock:
            self._refill()
            if self._tokens < 1:
                await self._sleep((1 - self._tokens) / self.rate)
                self._refill()
            elif not queued:
                self._tokens -= 1
                return 0.0
            self._tokens -= 1
        return self._clock() - start


_buckets: dict[tuple[str, float], TokenBucket] = {}


def bucket_for(url: str, rate: float) -> TokenBucket:
    """The process's bucket for sending to `url` at `rate` (made on first use).

    asyncio locks bind to a loop on first contention only (Python 3.10+),
    so a bucket outlives the `asyncio.run` that made it.
    """
    key = (url, rate)
    bucket = _buckets.get(key)
    if bucket is None:
        bucket = _buckets[key] = TokenBucket(rate)
    return bucket


def send_rate(ctx: ChannelContext) -> float:
    """Events per second per relay from `ctx` (`nostr_transport_rate`); DecodeError if not positive."""
    value = ctx.options.get(RATE_OPTION.name)
    if value is None:
        return float(DEFAULT_RATE)
    try:
        rate = float(str(value).strip())
    except ValueError:
        rate = math.nan
    if not (math.isfinite(rate) and rate > 0):
        raise DecodeError(
            f"--nostr-rate {str(value)[:40]!r} is not a positive number of events a second",
            hint="e.g. --nostr-rate 5 (KEZ_NOSTR_RATE)",
        )
    return rate
