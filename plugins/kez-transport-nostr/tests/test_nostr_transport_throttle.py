"""Sending is throttled per relay: a token bucket of `rate` events refilled at `rate`/s (seeds 000)."""

from __future__ import annotations

import asyncio
import time

import pytest
from kez_core.errors import DecodeError
from kez_core.protocols import ChannelContext
from kez_transport_nostr.throttle import DEFAULT_RATE, TokenBucket, bucket_for, send_rate
from kez_transport_nostr.transport import NostrTransport
from nostr_transport_helpers import envelope, rid


class FakeClock:
    """A clock that moves only when the bucket sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_bucket_lets_a_burst_of_rate_through_then_spaces_events_at_one_over_rate():
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)

    async def take(n: int) -> list[float]:
        times = []
        for _ in range(n):
            await bucket.take()
            times.append(clock.now)
        return times

    times = asyncio.run(take(15))
    assert times[:5] == [1000.0] * 5  # the burst
    gaps = [b - a for a, b in zip(times[4:], times[5:], strict=False)]
    assert all(gap == pytest.approx(0.2) for gap in gaps)
    # never more than rate + burst in any one second
    assert sum(1 for t in times if t < 1001.0) <= 10


def test_a_bucket_refills_while_idle_but_never_beyond_its_capacity():
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)

    async def run() -> None:
        for _ in range(5):
            await bucket.take()
        clock.now += 60  # a long pause
        for _ in range(5):
            await bucket.take()
        assert clock.sleeps == []
        await bucket.take()
        assert clock.sleeps == [pytest.approx(0.2)]

    asyncio.run(run())


def test_concurrent_takers_share_one_bucket():
    clock = FakeClock()
    bucket = TokenBucket(2, clock=clock, sleep=clock.sleep)

    async def run() -> list[float]:
        times: list[float] = []

        async def one() -> None:
            await bucket.take()
            times.append(clock.now)

        await asyncio.gather(*(one() for _ in range(6)))
        return sorted(times)

    times = asyncio.run(run())
    assert times == pytest.approx([1000, 1000, 1000.5, 1001, 1001.5, 1002])


def test_the_rate_option_defaults_to_5_and_is_checked():
    assert DEFAULT_RATE == 5
    assert send_rate(ChannelContext()) == 5
    assert send_rate(ChannelContext(options={"nostr_transport_rate": "12.5"})) == 12.5
    for bad in ("0", "-1", "fast", "nan", "inf"):
        with pytest.raises(DecodeError, match="--nostr-rate"):
            send_rate(ChannelContext(options={"nostr_transport_rate": bad}))


def test_buckets_are_per_relay_and_per_rate():
    assert bucket_for("ws://a", 5) is bucket_for("ws://a", 5)
    assert bucket_for("ws://a", 5) is not bucket_for("ws://b", 5)
    assert bucket_for("ws://a", 5) is not bucket_for("ws://a", 6)


def test_sending_to_a_real_relay_keeps_to_the_rate(transport_relay):
    """4 envelopes at 2/s: the first 2 go at once, the 3rd waits 0.5 s, the 4th 1 s."""
    transport = NostrTransport()
    context = ChannelContext(
        options={"nostr_transport_relays": (transport_relay.url,), "nostr_transport_rate": "2"},
        timeout=10,
    )
    route = rid()

    async def run() -> float:
        start = time.monotonic()
        for _ in range(4):
            await transport.send(route, envelope(), context)
        return time.monotonic() - start

    # a fresh rate for this test, so no other test's sends used its tokens
    assert asyncio.run(run()) >= 0.95


def test_the_transport_declares_the_rate_option():
    names = {option.name: option for option in NostrTransport().options}
    option = names["nostr_transport_rate"]
    assert (
        option.flag == "--nostr-rate" and option.env == "KEZ_NOSTR_RATE" and option.default == "5"
    )
