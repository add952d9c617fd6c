"""Per-client token buckets with an idle sweep.

Each client key (the client's IP address, as uvicorn reports it after
applying trusted proxy headers) has a bucket of `burst` tokens refilled at
`rate` tokens a second; a request takes one token or is refused with the
seconds until one is there. A bucket that has refilled completely holds no
information, so a sweep (at most once every `sweep_every` seconds, run by
the requests themselves) drops those; `max_keys` bounds memory even when a
flood of addresses arrives between sweeps (the least recently seen
buckets go first). Used from the event loop only: no locks.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    """`take(key)` → None when allowed, else seconds to wait. `burst == 0` disables the limit."""

    def __init__(
        self,
        burst: int,
        rate: float,
        *,
        sweep_every: float = 60.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = float(burst)
        self.rate = float(rate)
        self.sweep_every = sweep_every
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [tokens, last]
        self._last_sweep = clock()

    @property
    def enabled(self) -> bool:
        return self.burst > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, bucket: list[float], now: float) -> float:
        return min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)

    def take(self, key: str, cost: float = 1.0) -> float | None:
        """Take `cost` tokens from `key`'s bucket: None when taken, else seconds until they are there.

        A `cost` above the burst can never be taken (the caller checks that first).
        """
        if not self.enabled:
            return None
        now = self.clock()
        if now - self._last_sweep >= self.sweep_every or len(self._buckets) >= self.max_keys:
            self.sweep(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = [self.burst, now]
            self._buckets[key] = bucket
        else:
            self._buckets.move_to_end(key)
        tokens = self._level(bucket, now)
        bucket[1] = now
        if tokens >= cost:
            bucket[0] = tokens - cost
            return None
        bucket[0] = tokens
        if self.rate <= 0:
            return 3600.0
        return max(1.0, math.ceil((cost - tokens) / self.rate))

    def give(self, key: str, cost: float) -> None:
        """Put back `cost` tokens taken for work that did not happen (never above the burst)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket[0] = min(self.burst, bucket[0] + cost)

    def sweep(self, now: float | None = None) -> int:
        """Drop buckets that are full again (idle clients); returns how many were dropped."""
        now = self.clock() if now is None else now
        self._last_sweep = now
        full = [k for k, b in self._buckets.items() if self._level(b, now) >= self.burst]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) >= self.max_keys:  # still a flood: forget the least recent
            self._buckets.popitem(last=False)
        return len(full)
