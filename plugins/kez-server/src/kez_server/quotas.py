"""Storage quotas: how much one identity may keep here, and one client may add per hour.

Rate limits (`ratelimit.py`) count requests; a request may carry 8 MiB of
links, so a client could still fill the disk with big chains of fresh
identities. Two quotas bound what is stored:

- **per identity** (`--identity-max-links`, `--identity-max-bytes`): the
  links and the canonical bytes of one identity's stored chain. A push
  that would go beyond is refused whole: 403 `identity_quota`, with
  `quota` ("links" or "bytes"), `limit` and `used`. Checked by
  `ChainService` before the insert, with the stored size read once from
  the database and then kept per head id, like its validators.
- **per client address** (`--client-links-per-hour`,
  `--client-bytes-per-hour`): new links and bytes a client stores (a
  re-push of links the server has costs nothing; fork evidence counts),
  as token buckets that refill over the hour. Beyond: 429 `client_quota`
  with `Retry-After`; a single request larger than the hourly allowance
  can never pass: 413 `too_large`. Per server process, like the rate limits.

0 turns a quota off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .errors import ApiError
from .ratelimit import TokenBuckets

HOUR = 3600.0


def identity_quota(identity: str, what: str, used: int, limit: int) -> ApiError:
    unit = "links" if what == "links" else "bytes"
    return ApiError(
        403,
        "identity_quota",
        f"the chain of {identity[:80]} would have {used} {unit} here; this server keeps at most "
        f"{limit} {unit} per identity",
        hint="publish the chain elsewhere too (a file, a gist, nostr) or ask the operator",
        quota=what,
        limit=limit,
        used=used,
    )


def check_identity_quota(
    identity: str, links: int, nbytes: int, *, max_links: int, max_bytes: int
) -> None:
    """ApiError 403 when a chain of `links` links and `nbytes` bytes is over a quota (0: none)."""
    if max_links and links > max_links:
        raise identity_quota(identity, "links", links, max_links)
    if max_bytes and nbytes > max_bytes:
        raise identity_quota(identity, "bytes", nbytes, max_bytes)


class ClientQuota:
    """New links and bytes per client address per hour; thread-safe (appends run in threads)."""

    def __init__(
        self,
        bytes_per_hour: int,
        links_per_hour: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._buckets = {
            "bytes": TokenBuckets(bytes_per_hour, bytes_per_hour / HOUR, clock=clock),
            "links": TokenBuckets(links_per_hour, links_per_hour / HOUR, clock=clock),
        }
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return any(b.enabled for b in self._buckets.values())

    def charge(self, client: str, links: int, nbytes: int) -> None:
        """Take `links` and `nbytes` from `client`'s allowance, both or neither; else ApiError."""
        costs = {"links": links, "bytes": nbytes}
        with self._lock:
            taken: list[str] = []
            for what, cost in costs.items():
                buckets = self._buckets[what]
                if not buckets.enabled or not cost:
                    continue
                limit = int(buckets.burst)
                if cost > limit:
                    self._give_back(client, taken, costs)
                    raise ApiError(
                        413,
                        "too_large",
                        f"this request would store {cost} new {what}; a client may store at most "
                        f"{limit} {what} an hour here",
                        hint="push the chain in smaller pieces, spread over time",
                        quota=what,
                        limit=limit,
                    )
                wait = buckets.take(client, cost)
                if wait is not None:
                    self._give_back(client, taken, costs)
                    seconds = int(wait)
                    raise ApiError(
                        429,
                        "client_quota",
                        f"your address stored its allowance of new {what} for now ({limit} an "
                        f"hour); retry in {seconds} s",
                        headers={"retry-after": str(seconds)},
                        quota=what,
                        limit=limit,
                        retry_after=seconds,
                    )
                taken.append(what)

    def refund(self, client: str, links: int, nbytes: int) -> None:
        """Give back a charge whose links were not stored (an insert that lost a race)."""
        with self._lock:
            self._give_back(client, ["links", "bytes"], {"links": links, "bytes": nbytes})

    def _give_back(self, client: str, taken: list[str], costs: dict[str, int]) -> None:
        for what in taken:
            if self._buckets[what].enabled and costs[what]:
                self._buckets[what].give(client, costs[what])
