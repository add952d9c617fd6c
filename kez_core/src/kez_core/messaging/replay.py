"""The replay store: which message ids a recipient has accepted, kept on disk.

An envelope can be captured and delivered again (a relay, a NATS subscriber,
the server's inbox can all repeat it). A message is accepted once: its id
(the signed object's id, unique thanks to its nonce) goes into a SQLite file
in the same transaction that decides it is new. Messages dated more than 7
days back or more than 5 minutes ahead are refused before that, so ids older
than the window can be forgotten and the file stays small.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Self

from ..errors import StoreError
from ..sqlite import enable_wal
from ..timefmt import MAX_CLOCK_SKEW, format_time, now
from .errors import MessageRefused

MAX_AGE = timedelta(days=7)
MAX_AHEAD = MAX_CLOCK_SKEW
_PRUNE_EVERY = 1000  # accepted messages between two clean-ups of ids past the window


def check_window(created_at: datetime, at: datetime | None = None) -> None:
    """Refuse a message dated outside [now - 7 days, now + 5 minutes]."""
    at = at or now()
    if created_at < at - MAX_AGE:
        raise MessageRefused(
            f"message is dated {format_time(created_at)}, more than 7 days ago",
            reason="too_old",
            hint="messages are refused after a week, so a captured one cannot be replayed later",
        )
    if created_at > at + MAX_AHEAD:
        raise MessageRefused(
            f"message is dated {format_time(created_at)}, in the future",
            reason="from_future",
            hint="the sender's clock (or ours) is wrong by more than 5 minutes",
        )


class ReplayStore:
    """Message ids accepted so far, in one SQLite file (safe across threads and processes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._accepted = 0
        db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            # WAL: one fsync per accepted message (FULL keeps every commit through a
            # power loss), and readers never wait for the writer
            enable_wal(self._db)
            self._db.execute("PRAGMA synchronous=FULL")
        except (OSError, sqlite3.Error) as exc:
            if db is not None:
                db.close()
            raise StoreError(
                f"cannot open the replay store {self.path}: {exc}",
                hint="check that the folder exists and is writable",
            ) from exc
        self._write(
            "CREATE TABLE IF NOT EXISTS kez_seen_messages ("
            " id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, seen_at INTEGER NOT NULL"
            ") WITHOUT ROWID"
        )
        self._write("CREATE INDEX IF NOT EXISTS kez_seen_by_date ON kez_seen_messages (created_at)")

    def accept(self, message_id: str, created_at: datetime, at: datetime | None = None) -> None:
        """Record `message_id` as accepted; MessageRefused if it is outside the window or seen."""
        at = at or now()
        check_window(created_at, at)
        with self._lock:
            fresh = (
                self._write(
                    "INSERT OR IGNORE INTO kez_seen_messages VALUES (?, ?, ?)",
                    (message_id, int(created_at.timestamp()), int(at.timestamp())),
                )
                == 1
            )
            if not fresh:
                raise MessageRefused(f"message {message_id} was already received", reason="replay")
            self._accepted += 1
            if self._accepted % _PRUNE_EVERY == 0:
                self._prune(at)

    def seen(self, message_id: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM kez_seen_messages WHERE id = ?", (message_id,)
            ).fetchone()
        return row is not None

    def prune(self, at: datetime | None = None) -> int:
        """Forget ids of messages the window refuses anyway; how many were forgotten."""
        with self._lock:
            return self._prune(at or now())

    def _prune(self, at: datetime) -> int:
        cutoff = int((at - MAX_AGE - MAX_AHEAD).timestamp())
        return self._write("DELETE FROM kez_seen_messages WHERE created_at < ?", (cutoff,))

    def _write(self, sql: str, params: tuple[object, ...] = ()) -> int:
        """One statement in its own write transaction; the number of rows it changed.

        BEGIN IMMEDIATE takes the write lock first, so a concurrent writer in
        another process waits in SQLite's busy handler: a statement that took a
        read lock and then wanted the write lock could fail at once instead
        (SQLite skips the handler where waiting might deadlock).
        """
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                changed = self._db.execute(sql, params).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(
                f"replay store {self.path}: {exc}",
                hint="is it a KEZ replay store? A damaged one can be moved away (it only guards against repeats)",
            ) from exc
        return int(changed)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM kez_seen_messages").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
