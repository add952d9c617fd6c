"""`--nostr-relay`: push a handle's browsers when an envelope for it arrives on nostr.

A sender using the nostr transport never talks to this server: the envelope
goes to relays as a kind-4243 event tagged `["p", <routing id>]`
(`kez_transport_nostr.events`). To wake the recipient's browsers anyway,
the server keeps a live subscription on each configured relay for the
routing ids of its registered identities' usable inbox keys (the same set
the NATS callout grants, `inbox_keys`), and for each new, well-formed event
calls `PushService.message_stored(handle)`, as the HTTP inbox does for a
message it stores. Nothing is stored: the recipient reads the relay itself.

The routing ids are recomputed every `refresh` seconds and at once after a
registration or a chain push here (`changed()`); when the set changed, or a
relay dropped its subscription, the subscriptions are replaced (the new
ones open before the old ones close, and look back a little, so nothing is
missed in between; repeats are dropped by event id).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from kez_core.registry import Registry
from kez_core.timefmt import now

from .db import Store
from .inbox_keys import InboxHistories
from .privacy import shown

log = logging.getLogger("kez_server.nostr")

REFRESH = 30.0  # seconds between recomputations of the routing ids
TIMEOUT = 10.0  # a relay's time to answer a subscription
OVERLAP = 60  # seconds a replacing subscription looks back
ROUTES_PER_REQ = 500  # routing ids in one REQ filter (relays cap filter sizes)
SEEN_IDS = 65_536


class NostrListener:
    """Live subscriptions on `relays` for every registered identity's routing ids."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        relays: tuple[str, ...],
        on_envelope: Callable[[str], None],
        *,
        refresh: float = REFRESH,
        timeout: float = TIMEOUT,
    ) -> None:
        self.store = store
        self.relays = relays
        self.on_envelope = on_envelope
        self.refresh = refresh
        self.timeout = timeout
        self.routes: dict[str, str] = {}  # routing id -> handle
        self.pushed = 0  # counters, for tests and health
        self.dropped = 0
        self._histories = InboxHistories(store, registry)
        self._subscriptions: list[Any] = []
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Compute the routing ids, subscribe, and keep them current in the background."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = self._loop.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._replace([])

    def changed(self) -> None:
        """A registration or a chain changed: recompute the routing ids now (any thread)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(wake.set)

    # ------------------------------------------------------------ routing ids

    def current_routes(self) -> dict[str, str]:
        """routing id -> handle for every registered identity's usable inbox keys (blocking)."""
        at = now()
        routes: dict[str, str] = {}
        for handle, identity in self.store.registered():
            history = self._histories.get(identity)
            if history is None:
                continue
            for route in history.routing_ids(at):
                routes.setdefault(route, handle)
        return routes

    async def _run(self) -> None:
        assert self._wake is not None
        since = int(time.time())
        while True:
            try:
                routes = await asyncio.to_thread(self.current_routes)
            except Exception as exc:  # noqa: BLE001 - the database may be away for a moment
                log.warning("nostr listener: cannot read the routing ids: %r", exc)
                routes = self.routes
            broken = any(s.ended.is_set() for s in self._subscriptions)
            if routes != self.routes or broken or (routes and not self._subscriptions):
                self.routes = routes
                await self._replace(self._subscribe(routes, since))
                since = int(time.time()) - OVERLAP
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.refresh):
                    await self._wake.wait()
            self._wake.clear()

    def _subscribe(self, routes: dict[str, str], since: int) -> list[Any]:
        from kez_channel_nostr.relay import LiveSubscription
        from kez_transport_nostr.events import ENVELOPE_KIND

        ids = sorted(routes)
        subscriptions = []
        for start in range(0, len(ids), ROUTES_PER_REQ):
            filter_ = {
                "kinds": [ENVELOPE_KIND],
                "#p": ids[start : start + ROUTES_PER_REQ],
                "since": since,
            }
            for url in self.relays:
                subscription = LiveSubscription(url, filter_, self._event)
                subscription.start(self.timeout)
                subscriptions.append(subscription)
        log.info(
            "nostr listener: watching %d routing id(s) on %d relay(s)", len(ids), len(self.relays)
        )
        return subscriptions

    async def _replace(self, subscriptions: list[Any]) -> None:
        old, self._subscriptions = self._subscriptions, subscriptions
        if subscriptions:
            await asyncio.wait(
                [asyncio.ensure_future(s.wait_live()) for s in subscriptions], timeout=self.timeout
            )
        await asyncio.gather(*(s.aclose() for s in old), return_exceptions=True)

    # ------------------------------------------------------------ events

    async def _event(self, event: Any) -> None:
        from kez_transport_nostr.events import rejection

        handle = route = None
        if isinstance(event, dict) and isinstance(event.get("tags"), list):
            for tag in event["tags"]:
                if (
                    isinstance(tag, list)
                    and len(tag) >= 2
                    and tag[0] == "p"
                    and tag[1] in self.routes
                ):
                    route, handle = tag[1], self.routes[tag[1]]
                    break
        event_id = event.get("id") if isinstance(event, dict) else None
        if (
            handle is None
            or route is None
            or not isinstance(event_id, str)
            or event_id in self._seen
        ):
            self.dropped += 1
            return
        reason = rejection(event, route, 0)
        if reason is not None:
            self.dropped += 1
            log.debug("nostr listener: dropped an event %s", reason)
            return
        self._seen[event_id] = None
        while len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        self.pushed += 1
        log.debug("nostr listener: envelope for %s", shown(handle, log))
        self.on_envelope(handle)
