"""Group commit for the inbox: concurrent POSTs share one transaction and one thread hop.

Each stored envelope used to cost its own trip to the thread pool and its
own transaction; under load most of a POST's server time went there, not
into the insert. `InboxWriter.store` queues the row and waits; one drain
task at a time takes everything queued, stores it with
`Store.store_messages` (one transaction) in the thread pool, and answers
each waiter with its seq. So a batch forms by itself while the previous
one commits, and a lone POST is stored at once.

Durability is unchanged: `store` returns only after the commit of the
transaction that holds the row, so an answered POST is as durable as it
was when each POST committed on its own. A failed batch fails every POST
in it (the same error each would have got alone: the handler turns a
database error into 503).
"""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from .db import MessageRow, Store

log = logging.getLogger("kez_server.inbox")

MAX_BATCH = 256  # rows per transaction: bounds how long one commit holds the write lock


def _retrieved(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()


class InboxWriter:
    """Stores inbox rows in batches from the event loop (one per app; event-loop only)."""

    def __init__(self, store: Store, *, max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: list[tuple[MessageRow, asyncio.Future[int]]] = []
        self._drain: asyncio.Task[None] | None = None

    async def store_message(
        self, handle: str, route: str | None, envelope: str, received_at: str, received_unix: int
    ) -> int:
        """The seq of the stored envelope, once its transaction has committed."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)  # a waiter that went away leaves no warning behind
        self._queue.append(((handle, route, envelope, received_at, received_unix), future))
        if self._drain is None:
            # its own task: a POST whose client goes away cannot cancel other POSTs' commit
            self._drain = asyncio.create_task(self._run(), name="kez-inbox-writer")
        # shield: a cancelled request stops waiting, but its row is still stored
        return await asyncio.shield(future)

    async def _run(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                try:
                    seqs = await run_in_threadpool(
                        self.store.store_messages, [row for row, _ in batch]
                    )
                except BaseException as exc:
                    for _row, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_row, future), seq in zip(batch, seqs, strict=True):
                    if not future.done():
                        future.set_result(seq)
        finally:
            self._drain = None
            if self._queue:  # cancelled with rows left (shutdown): they are not stored
                for _row, future in self._queue:
                    if not future.done():
                        future.set_exception(RuntimeError("the server is shutting down"))
                self._queue.clear()
