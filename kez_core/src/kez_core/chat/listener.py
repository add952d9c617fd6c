"""A long-running receiver (issue 12 §6): every route at once, reconnecting, as typed events.

`Listener.events()` subscribes, for every `Route` and every inbox key this
device holds, in a task of its own. A subscription that fails or ends is
reported (`down`, with the error and the delay) and opened again after an
exponential backoff with jitter (`base`, doubling, capped at `cap`); the
next `up` says it is back. A transport catches up by itself on reopening:
the http inbox from its cursor file, nostr from shortly before the moment
the lost subscription ended (`ctx.options["resume_after"]`, unix time, which
the listener sets when it subscribes again; at most the lookback
`--transport-since`); core NATS keeps nothing while a subscriber is away.
Envelopes that arrive together (several waiting in the queue) are opened
as one batch through the service (`MessagingService.receive_many`: one
replay-store transaction, `ReplayStore.accept_many`). The batch is opened
on the event loop's thread: in a worker thread, the transports' readers
and the opening fought over the interpreter lock, and a 10 MiB file over
NATS took longer (measured with benchmarks/messaging_e2e.py --bob process).
A replay (an envelope seen before, as a catch-up re-delivers) is a
`refused` event whose error's `reason` is `replay`.

The CLI (`kez message listen`) renders these events through `run()` (which
stops after N messages or a time); a UI can consume the same iterator.
Nothing here prints or parses flags.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

import attrs

from ..errors import KezError, TransportError
from .service import MessagingService, Received, Route

BASE_DELAY = 0.5  # seconds before the first retry of a failed subscription
MAX_DELAY = 30.0  # the backoff's cap
KEYRING_CHECK = 1.0  # seconds between looks for inbox keys added meanwhile
NEW_KEY_TRIES = 30  # a key added while listening: tries at `keyring_check` pace before the backoff
BATCH = 64  # at most this many queued envelopes are opened together


def backoff(
    attempt: int,
    *,
    base: float = BASE_DELAY,
    cap: float = MAX_DELAY,
    rand: Callable[[], float] = random.random,
) -> float:
    """The delay before retry number `attempt` (0, 1, …): `min(cap, base * 2**attempt)`, of which
    a random half is taken away (jitter), so listeners that lost one server do not return together."""
    ceiling = min(cap, base * 2.0 ** min(attempt, 32))
    return ceiling * (0.5 + 0.5 * rand())


@attrs.frozen
class ListenEvent:
    """One thing that happened while listening.

    kind:
    - `up`: the subscription of `route` for inbox key `key` is live (`again`: after a `down`);
    - `down`: it failed or ended (`error`), retried in `retry_in` seconds;
    - `received`: an envelope was opened and acted on (`received`);
    - `refused`: an envelope was refused (`error`; `reason` `replay` for one seen before);
    - `note`: something worth a line (`text`), e.g. acks that could not be sent yet.
    """

    kind: str
    route: str = ""
    key: str | None = None
    again: bool = False
    error: dict[str, Any] | None = None
    retry_in: float | None = None
    received: Received | None = None
    text: str = ""


@attrs.define
class Listener:
    """Listens on `routes` for `service`'s inbox keys; see the module docstring."""

    service: MessagingService
    routes: Sequence[Route]
    base: float = BASE_DELAY
    cap: float = MAX_DELAY
    keyring_check: float = KEYRING_CHECK
    # envelopes opened together at most; a caller that stops after n messages lowers it, so
    # nothing past the n-th is taken in (stored, recorded as seen) without being shown
    max_batch: int = BATCH
    _queue: asyncio.Queue[Any] = attrs.field(init=False, factory=asyncio.Queue)
    _tasks: dict[tuple[str, str], asyncio.Task[None]] = attrs.field(init=False, factory=dict)
    _up: set[tuple[str, str]] = attrs.field(init=False, factory=set)
    _announced: set[str] = attrs.field(init=False, factory=set)
    _side: set[asyncio.Task[None]] = attrs.field(init=False, factory=set)

    @property
    def live_routes(self) -> list[Route]:
        """The routes with at least one live subscription (acks go through these)."""
        names = {name for name, _ in self._up}
        return [r for r in self.routes if r.name in names]

    async def _watch(self, route: Route, key: str, new: bool = False) -> None:
        """One subscription, for ever: `up`, envelopes, `down`, a pause, again. A key `new` since
        the start (just published) is retried every `keyring_check` seconds until it was live once,
        for `NEW_KEY_TRIES` tries, since the server may not hold the chain naming it yet."""
        from ..messaging import routing_id

        attempt = 0
        was_down = False
        ever_live = False
        ctx = route.ctx
        while True:
            live = False
            try:
                async with route.transport.subscribe(routing_id(key), ctx) as inbox:
                    live = ever_live = True
                    attempt = 0
                    await self._queue.put(ListenEvent("up", route.name, key, again=was_down))
                    if route.name not in self._announced:
                        self._announced.add(route.name)
                        self._side.add(
                            asyncio.create_task(self._announce(route))
                        )  # not in the way of envelopes
                    async for envelope in inbox:
                        await self._queue.put((route, envelope, inbox))
                error: dict[str, Any] = TransportError(
                    f"the {route.name} subscription ended"
                ).to_dict()
            except asyncio.CancelledError:
                raise
            except KezError as exc:
                error = exc.to_dict()
            except Exception as exc:  # noqa: BLE001 - a plugin's own failure must not end the others
                error = TransportError(f"{route.name}: {type(exc).__name__}: {exc}").to_dict()
            if live:  # it was live until now: the next subscription catches up from here
                ctx = attrs.evolve(
                    route.ctx, options={**route.ctx.options, "resume_after": time.time()}
                )
            delay = backoff(attempt, base=self.base, cap=self.cap)
            if new and not ever_live and attempt < NEW_KEY_TRIES:
                delay = min(delay, self.keyring_check)
            attempt += 1
            was_down = True
            await self._queue.put(ListenEvent("down", route.name, key, error=error, retry_in=delay))
            await asyncio.sleep(delay)

    async def _announce(self, route: Route) -> None:
        """Once a route is live: a transport that can say where we are reached does so (nostr: our
        NIP-65 relay list), through its optional `announce(ctx)`; what it says is a `note`."""
        announce = getattr(route.transport, "announce", None)
        if announce is None:
            return
        try:
            said = await announce(route.ctx)
        except KezError as exc:
            said = f"{route.name}: {exc.message}"
        if said:
            await self._queue.put(ListenEvent("note", route.name, text=str(said)))

    def _start(self, keys: Sequence[str], new: bool = False) -> None:
        for route in self.routes:
            for key in keys:
                if (route.name, key) not in self._tasks:
                    self._tasks[(route.name, key)] = asyncio.create_task(
                        self._watch(route, key, new)
                    )

    def _new_keys(self) -> list[str]:
        from ..messaging import InboxKeyring

        stored = {r.key for r in InboxKeyring(self.service.folder).records()}
        held = {key for _, key in self._tasks}
        if stored <= held:
            return []
        return [s.key_id for s in self.service.secrets(reload=True) if s.key_id not in held]

    async def flush_acks(self) -> ListenEvent | None:
        """Send queued acks through the live routes; a `note` event when that failed."""
        routes = self.live_routes
        if not routes:
            return None
        try:
            await self.service.flush_acks(routes)
        except KezError as exc:
            return ListenEvent("note", text=f"acks not sent yet: {exc.message}")
        return None

    def _open(
        self, batch: list[tuple[Route, bytes, Any]]
    ) -> list[tuple[ListenEvent | None, Callable[[], None]]]:
        """Open a batch of envelopes (one replay transaction): each one's event
        and what tells its transport it was handled (a transport with a cursor, http, moves it on)."""
        answers = self.service.receive_many(
            [envelope for _, envelope, _ in batch], via=[route.name for route, _, _ in batch]
        )
        out: list[tuple[ListenEvent | None, Callable[[], None]]] = []
        for (route, envelope, inbox), answer in zip(batch, answers, strict=True):
            event: ListenEvent | None = None
            if isinstance(answer, KezError):  # a replay too (`error.reason == "replay"`)
                event = ListenEvent("refused", route.name, error=answer.to_dict())
            else:
                event = ListenEvent("received", route.name, received=answer)
            out.append((event, _handled(inbox, envelope)))
        return out

    async def events(self) -> AsyncGenerator[ListenEvent, None]:
        """Listen until the caller stops iterating (or cancels); then every subscription is closed."""
        first = await self.flush_acks_at_start()
        if first is not None:
            yield first
        self._start([s.key_id for s in self.service.secrets()])
        next_check = time.monotonic() + self.keyring_check
        held: list[Any] = []  # an item taken from the queue while draining a batch, not yet handled
        try:
            while True:
                if time.monotonic() >= next_check:  # also while envelopes keep coming
                    next_check = time.monotonic() + self.keyring_check
                    self._start(self._new_keys(), new=True)
                if held:
                    item = held.pop()
                else:
                    try:
                        item = await asyncio.wait_for(
                            self._queue.get(), max(0.01, next_check - time.monotonic())
                        )
                    except TimeoutError:
                        next_check = time.monotonic() + self.keyring_check
                        self._start(self._new_keys(), new=True)
                        continue
                if isinstance(item, ListenEvent):
                    if item.kind == "up":
                        self._up.add((item.route, item.key or ""))
                    elif item.kind == "down":
                        self._up.discard((item.route, item.key or ""))
                    yield item
                    continue
                batch = [item]
                while len(batch) < max(1, self.max_batch) and not self._queue.empty():
                    more = self._queue.get_nowait()
                    if isinstance(more, ListenEvent):
                        held.append(more)  # in order: after this batch
                        break
                    batch.append(more)
                opened = self._open(batch)
                if any(e is not None and e.kind == "received" for e, _ in opened):
                    note = await self.flush_acks()
                    if note is not None:
                        opened.append((note, _nothing))
                for event, handled in opened:
                    try:
                        if event is not None:
                            yield event
                    finally:  # shown (or refused): only now may a cursor pass it
                        handled()
        finally:
            await self.aclose()

    async def run(
        self, on_event: Callable[[ListenEvent], None], *, count: int = 0, wait: float = 0.0
    ) -> int:
        """Listen, handing every event to `on_event`, until `count` messages arrived (0: never;
        what counts is `receiving.counts_as_message`) or `wait` seconds passed (0: never);
        the number of messages. `on_event` renders and must not block; when it returns, the
        event is handled (a transport's cursor may pass it). Nothing past the `count`-th
        message is taken in: the batch size shrinks to what is still wanted."""
        from .receiving import counts_as_message

        if count:
            self.max_batch = count
        received = 0
        events = self.events()
        try:
            async with asyncio.timeout(wait or None):
                async for event in events:
                    on_event(event)
                    if counts_as_message(event):
                        received += 1
                        if count and received >= count:
                            return received
                    if count:
                        self.max_batch = count - received
        except TimeoutError:
            return received
        finally:
            await events.aclose()
        return received

    async def flush_acks_at_start(self) -> ListenEvent | None:
        """Acks an earlier run could not send go first, through every route."""
        try:
            await self.service.flush_acks(self.routes)
        except KezError as exc:
            return ListenEvent("note", text=f"acks not sent yet: {exc.message}")
        return None

    async def aclose(self) -> None:
        tasks = [*self._tasks.values(), *self._side]
        self._tasks.clear()
        self._side.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _nothing() -> None:
    return None


def _handled(inbox: Any, envelope: bytes) -> Callable[[], None]:
    done = getattr(inbox, "done", None)
    if done is None:
        return _nothing
    return lambda: done(envelope)
