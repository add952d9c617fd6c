"""Fetching proofs politely: bounded concurrency, per-channel limits, timeouts, retries.

A channel reports network trouble as `FetchOutcome(reachable=False)`; this
module retries those with exponential backoff (or the server's Retry-After),
gives up when the wait would be longer than `max_retry_wait`, and turns a
channel that hangs or raises into `unreachable` too: a failure to look is
never evidence against a proof.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import attrs

from ..protocols import Channel, ChannelContext, FetchOutcome


@attrs.frozen
class FetchPolicy:
    concurrency: int = 32  # proofs fetched at once, over all channels
    per_channel: int = 16  # at once per channel (one channel is one service/host)
    timeout: float = 10.0  # per attempt
    retries: int = 2  # extra attempts after an unreachable answer
    backoff: float = 0.5  # first wait; doubles each retry, with jitter
    max_retry_wait: float = 30.0  # a longer Retry-After ends the retries


class Fetcher:
    """Runs channel fetches under one policy; share it across all proofs of a run."""

    def __init__(
        self, policy: FetchPolicy, *, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    ) -> None:
        self.policy = policy
        self._all = asyncio.Semaphore(max(1, policy.concurrency))
        self._per_channel: dict[str, asyncio.Semaphore] = {}
        self._sleep = sleep

    def _channel_slot(self, name: str) -> asyncio.Semaphore:
        if name not in self._per_channel:
            self._per_channel[name] = asyncio.Semaphore(max(1, self.policy.per_channel))
        return self._per_channel[name]

    async def _attempt(self, channel: Channel, handle: str, ctx: ChannelContext) -> FetchOutcome:
        # The channel applies ctx.timeout to its own I/O; this outer bound catches one that does not.
        # (asyncio.timeout, unlike wait_for, runs the fetch in this task: no task per attempt.)
        try:
            async with asyncio.timeout(self.policy.timeout * 2 + 1):
                return await channel.fetch(handle, ctx)
        except TimeoutError:
            return FetchOutcome(
                reachable=False, reason=f"{channel.name}: no answer within {self.policy.timeout:g}s"
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin bug must not become `invalid`
            return FetchOutcome(
                reachable=False,
                reason=f"{channel.name} channel failed: {type(exc).__name__}: {exc}",
            )

    async def fetch(
        self, channel: Channel, handle: str, ctx: ChannelContext
    ) -> tuple[FetchOutcome, int]:
        """The outcome and the number of attempts it took."""
        attempts = 0
        while True:
            attempts += 1
            async with self._all, self._channel_slot(channel.name):
                outcome = await self._attempt(channel, handle, ctx)
            if outcome.reachable or attempts > self.policy.retries:
                return outcome, attempts
            if outcome.retry_after is not None:
                wait = float(outcome.retry_after)
            else:
                wait = self.policy.backoff * (2 ** (attempts - 1)) * (0.75 + random.random() / 2)
            if wait > self.policy.max_retry_wait:
                return outcome, attempts
            await self._sleep(max(0.0, wait))
