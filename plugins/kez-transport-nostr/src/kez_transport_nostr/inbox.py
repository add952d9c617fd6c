"""Listening on many relays at once: one live subscription each, one stream of envelopes.

Imports `websockets` (through `kez_channel_nostr.relay`): the transport
imports this module only inside `subscribe`.

Every relay's events go into one bounded queue in arrival order; the
consumer checks them (`events.rejection`: id, signature, kind, p tag, age,
ASCII, size) and drops repeats by event id, so an envelope stored on three
relays is yielded once. Only checked events are remembered as seen, so a
forged copy that reuses a real event's id cannot hide the real one.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from kez_channel_nostr.nip42 import one_time_signer
from kez_channel_nostr.relay import LiveSubscription
from kez_core.errors import TransportError

from .events import ENVELOPE_KIND, rejection
from .options import RELAY_HINT

# Events read from relays but not yet taken by the consumer; beyond this the
# relays' readers wait (backpressure) instead of growing memory.
QUEUE_SIZE = 1024
# Event ids remembered for de-duplication (the oldest are forgotten first).
SEEN_IDS = 65_536

_END = object()


class RelayInbox:
    """What `NostrTransport.subscribe` yields: envelopes (ASCII bytes) from every live relay.

    Iterate it with `async for`. Iteration raises TransportError when every
    relay has closed its subscription (there is nothing left to wait for)
    and stops after the context is left. `received`, `duplicates` and
    `dropped` (reason → count) say what the relays sent, for logs and tests.
    """

    def __init__(
        self,
        urls: list[str],
        routing_id: str,
        since: int,
        timeout: float,
        *,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.routing_id = routing_id
        self.since = since
        self.timeout = timeout
        self.filter: dict[str, Any] = {"kinds": [ENVELOPE_KIND], "#p": [routing_id], "since": since}
        self.received = 0
        self.duplicates = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self._queue: asyncio.Queue[Any] = asyncio.Queue(queue_size)
        self._backlog = asyncio.Event()  # a relay waits for the consumer to take events
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.subscriptions = [
            # NIP-42 with a one-time key per connection: the reader proves no lasting key.
            LiveSubscription(
                url, self.filter, self._event_from(url), on_end=self._ended, auth=one_time_signer()
            )
            for url in urls
        ]

    # ------------------------------------------------------------ relays' side

    def _event_from(self, url: str) -> Any:
        async def put(event: Any) -> None:
            if self._queue.full():
                self._backlog.set()
            await self._queue.put((url, event))

        return put

    def _ended(self, _subscription: LiveSubscription) -> None:
        if not self._closed and all(s.ended.is_set() for s in self.subscriptions):
            # The sentinel may wait behind a full queue; the last reader must not.
            task = asyncio.get_running_loop().create_task(self._queue.put(_END))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def live_relays(self) -> list[str]:
        """Relays whose subscription is live now (sent EOSE and not ended)."""
        return [s.url for s in self.subscriptions if s.live.is_set() and not s.ended.is_set()]

    def _failures(self) -> str:
        return "; ".join(f"{s.url} {s.error or 'did not answer'}" for s in self.subscriptions)

    async def open(self) -> None:
        """Start every relay's subscription; return once one is live, else TransportError.

        Each relay has the timeout to answer, and again for every next answer
        until its EOSE. Relays that are slower keep trying in the background
        and join when they go live; relays that fail are left out. When more
        stored events came than the queue holds, entering returns before
        EOSE: the consumer must take them for the relays to go on.
        """
        for subscription in self.subscriptions:
            subscription.start(self.timeout)
        waiting = {asyncio.ensure_future(s.wait_live()) for s in self.subscriptions}
        backlog = asyncio.ensure_future(self._backlog.wait())
        try:
            while waiting:
                done, waiting = await asyncio.wait(
                    waiting | {backlog}, return_when=asyncio.FIRST_COMPLETED
                )
                waiting.discard(backlog)
                if backlog in done or any(task.result() for task in done):
                    return
        finally:
            for task in (*waiting, backlog):
                task.cancel()
        raise TransportError(
            f"no nostr relay opened a subscription for routing id {self.routing_id}: {self._failures()}",
            hint=f"check that the relays are up and reachable, or add others; {RELAY_HINT}",
        )

    async def aclose(self) -> None:
        """Close every relay's subscription; a consumer still waiting (another task) stops."""
        self._closed = True
        await asyncio.gather(*(s.aclose() for s in self.subscriptions), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_END)

    # --------------------------------------------------------- consumer's side

    def __aiter__(self) -> RelayInbox:
        return self

    async def __anext__(self) -> bytes:
        while not self._closed:
            item = await self._queue.get()
            if item is _END:
                if self._closed:
                    break
                raise TransportError(
                    f"every nostr relay closed the subscription for routing id {self.routing_id}: "
                    f"{self._failures()}",
                    hint="subscribe again (stored envelopes since the lookback are sent again; "
                    "the replay store drops repeats)",
                )
            _url, event = item
            self.received += 1
            event_id = event.get("id") if isinstance(event, dict) else None
            if isinstance(event_id, str) and event_id in self._seen:
                self.duplicates += 1
                continue
            why = rejection(event, self.routing_id, self.since)
            if why is not None:
                self.dropped[why] += 1
                continue
            self._seen[event_id] = None
            if len(self._seen) > SEEN_IDS:
                self._seen.popitem(last=False)
            return event["content"].encode("ascii")
        raise StopAsyncIteration
