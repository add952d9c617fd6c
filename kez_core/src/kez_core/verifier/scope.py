"""What the fetches of one verification run share, released when the run ends.

The engine makes one `RunScope` per `verify_identity` / `verify_subject`
call and hands it to the channels as `ChannelContext.scope`. A channel keeps
there what is worth reusing between the proofs of that run — an HTTP client
and its open connections, one WebSocket per relay, a DID document already
read — under keys of its own (its name first), and says how to release it.
Nothing outlives the run, so a later check reads fresh data.

Two ways to keep things:

- `get(key, factory)`: one value for the whole run, shared by every fetch
  (a relay connection that multiplexes subscriptions, a cache).
- `lease(key, factory)`: an item for one fetch at a time, handed back to
  the run's free list afterwards (an HTTP client: a fetch's requests run on
  connections kept alive for the next fetch, while each client's own
  connection pool stays small — httpcore's pool bookkeeping costs grow with
  the square of its connections).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class RunScope:
    """Shared resources and caches of one verification run (see the module doc).

    `concurrency` is how many fetches of one channel the run makes at once:
    the number of connections worth keeping per service.
    """

    def __init__(self, *, concurrency: int = 16) -> None:
        self.concurrency = max(1, int(concurrency))
        self.closed = False
        self._items: dict[Hashable, Any] = {}
        self._free: dict[Hashable, list[Any]] = {}
        self._closers: list[Callable[[], Any]] = []

    def get(self, key: Hashable, factory: Callable[[], T]) -> T:
        """The value kept under `key`, made by `factory()` the first time it is asked for."""
        try:
            found: T = self._items[key]
            return found
        except KeyError:
            self._check_open()
            value = self._items[key] = factory()
            return value

    @contextlib.asynccontextmanager
    async def lease(
        self,
        key: Hashable,
        factory: Callable[[], T],
        close: Callable[[T], Any] | None = None,
    ) -> AsyncIterator[T]:
        """An item of the pool `key` for the caller alone until the block ends.

        A free item is reused; when none is free `factory()` makes one, and
        `close(item)` (when given) runs when the run ends. At most as many
        items exist as callers held one at the same time.
        """
        self._check_open()
        free = self._free.setdefault(key, [])
        if free:
            item = free.pop()
        else:
            item = factory()
            if close is not None:
                self.on_close(lambda: close(item))
        try:
            yield item
        finally:
            if not self.closed:
                free.append(item)

    def idle(self, key: Hashable) -> tuple[Any, ...]:
        """The items of the pool `key` not leased right now (diagnostics, tests)."""
        return tuple(self._free.get(key, ()))

    def on_close(self, callback: Callable[[], Any]) -> None:
        """Call `callback()` (a function, or one returning an awaitable) when the run ends.

        Callbacks run last registered first; one that fails does not stop the others.
        """
        self._check_open()
        self._closers.append(callback)

    async def aclose(self) -> None:
        """Release everything the run's channels kept (idempotent)."""
        self.closed = True
        while self._closers:
            callback = self._closers.pop()
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001, S110 - a connection that already broke is closed enough
                pass
        self._items.clear()
        self._free.clear()

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this verification run is over; its shared resources are closed")
