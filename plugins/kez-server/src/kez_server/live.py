"""The event "a message was stored for handle H", and live readers waiting for it.

`InboxEvents` is the one place that event goes through:

- hooks registered with `on_stored(hook)` run on the node that stored the
  message (once per message: Web Push fan-out hangs off this, and must not
  run on every node);
- live readers (`waiter(handle)`) are woken. A wakeup carries no data: the
  reader reads the database from its cursor, so a lost or doubled wakeup
  costs at most one query and never a message.

With several nodes on one PostgreSQL database, the storing transaction sends
`NOTIFY kez_inbox, '<handle>'` and `PgListener` (one LISTEN connection per
node) wakes that node's readers. Readers also re-read on every keepalive,
so a notification lost while the listener reconnects delays a message by
one keepalive at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from .db import NOTIFY_CHANNEL
from .privacy import pseudonym

log = logging.getLogger("kez_server.live")

StoredHook = Callable[[str, int], Any]


class InboxEvents:
    """In-process fan-out of "stored for H" (used from the event loop only: no locks)."""

    def __init__(self) -> None:
        self._hooks: list[StoredHook] = []
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def on_stored(self, hook: StoredHook) -> None:
        """Call `hook(handle, seq)` after each message this node stores (errors are logged)."""
        self._hooks.append(hook)

    def stored(self, handle: str, seq: int) -> None:
        """A message was stored here: run the hooks, wake the readers."""
        for hook in self._hooks:
            try:
                hook(handle, seq)
            except Exception as exc:  # noqa: BLE001 - a hook never fails the POST
                log.warning("inbox hook %r failed: %r", hook, exc)
        self.wake(handle)

    def wake(self, handle: str | None = None) -> None:
        """Wake the readers of `handle` (None: every reader, e.g. after a reconnect)."""
        groups = self._waiters.values() if handle is None else [self._waiters.get(handle, ())]
        for group in groups:
            for event in group:
                event.set()

    @contextlib.contextmanager
    def waiter(self, handle: str) -> Iterator[asyncio.Event]:
        """An event set whenever a message for `handle` may have arrived, while the block runs."""
        event = asyncio.Event()
        self._waiters.setdefault(handle, set()).add(event)
        try:
            yield event
        finally:
            group = self._waiters.get(handle)
            if group is not None:
                group.discard(event)
                if not group:
                    del self._waiters[handle]

    @property
    def readers(self) -> int:
        return sum(len(g) for g in self._waiters.values())


class PgListener:
    """LISTEN on the inbox channel of a PostgreSQL database; each notification wakes readers."""

    def __init__(self, url: str, events: InboxEvents, *, retry: float = 1.0) -> None:
        self.url = url  # a libpq URL (postgresql://…)
        self.events = events
        self.retry = retry
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kez-inbox-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        import psycopg

        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                try:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.ready.set()
                    self.events.wake()  # anything stored while we were not listening
                    async for note in conn.notifies():
                        log.debug("notified for %s", pseudonym(note.payload))
                        self.events.wake(note.payload)
                finally:
                    await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect on any database trouble
                log.warning("inbox LISTEN connection lost (%s); retrying", type(exc).__name__)
                await asyncio.sleep(self.retry)
