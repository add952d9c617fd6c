"""Where a listener stopped: the last inbox seq handled, kept per (server, handle, routing id).

`kez message listen --via http` without `--inbox-since` goes on from there,
so a second run neither prints nor refuses (as replays) what the first one
showed. The cursor moves only when the caller says an envelope was handled
(`InboxEnvelopes.done`), not when the transport hands it out: an envelope
received but not yet shown when the listener stops comes again next time.

The file sits in the identity's folder (the `identity_dir` context value),
`http-inbox-cursors/<hash>.json`, one per subscription, so two inbox keys
(two subscriptions to one handle) never write the same file; written
atomically, mode 0600. A missing or unreadable file means 0: everything
the server holds comes again and the replay store drops what was seen.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path

CURSOR_DIR = "http-inbox-cursors"
REMEMBERED = 4096  # envelopes handed out and not yet marked done


class Cursor:
    """The kept cursor of one subscription (no file when `folder` is None: nothing is kept)."""

    def __init__(self, folder: str | Path | None, base: str, handle: str, route: str) -> None:
        self.path: Path | None = None
        if folder is not None:
            name = hashlib.sha256(f"{base}\n{handle}\n{route}".encode()).hexdigest()[:32]
            self.path = Path(folder) / CURSOR_DIR / f"{name}.json"
        self.where = {"server": base, "handle": handle, "route": route}
        self.seq = self._load()

    def _load(self) -> int:
        if self.path is None:
            return 0
        try:
            seq = json.loads(self.path.read_bytes()).get("seq")
        except (OSError, ValueError, AttributeError):
            return 0
        return seq if type(seq) is int and seq >= 0 else 0

    def save(self, seq: int) -> None:
        """Keep `seq` when it is past the kept one."""
        if self.path is None or seq <= self.seq:
            return
        from kez_core.keystore import atomic_write

        atomic_write(self.path, json.dumps({**self.where, "seq": seq}).encode())
        self.seq = seq


class InboxEnvelopes:
    """What the http transport's `subscribe` yields: envelopes (ASCII bytes), in seq order.

    `done(envelope)` says the caller handled that envelope (shown it, or
    refused it): the cursor moves to its seq. Callers that never call it
    leave the cursor where it was.
    """

    def __init__(self, items: AsyncIterator[tuple[int, bytes]], cursor: Cursor) -> None:
        self._items = items
        self.cursor = cursor
        self._seqs: OrderedDict[bytes, int] = OrderedDict()

    def __aiter__(self) -> InboxEnvelopes:
        return self

    async def __anext__(self) -> bytes:
        seq, envelope = await self._items.__anext__()
        self._seqs[envelope] = seq
        while len(self._seqs) > REMEMBERED:
            self._seqs.popitem(last=False)
        return envelope

    def done(self, envelope: bytes) -> None:
        seq = self._seqs.pop(bytes(envelope), None)
        if seq is not None:
            self.cursor.save(seq)
