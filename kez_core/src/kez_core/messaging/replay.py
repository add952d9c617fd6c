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
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Self

from ..errors import StoreError
from ..sqlite import enable_wal
from ..timefmt import MAX_CLOCK_SKEW, format_time, now
from .errors import MessageRefused

MAX_AGE = timedelta(days=7)
MAX_AHEAD = MAX_CLOCK_SKEW
_LOOKUP_CHUNK = 500  # ids per `IN (...)` lookup, below SQLite's parameter limit
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


class _Request:
    """One caller's ids waiting for a group commit, and their answers once it is done."""

    __slots__ = ("answers", "at", "done", "error", "messages")

    def __init__(self, messages: list[tuple[str, datetime]], at: datetime) -> None:
        self.messages = messages
        self.at = at
        self.answers: list[MessageRefused | None] = []
        self.error: BaseException | None = None
        self.done = False


class ReplayStore:
    """Message ids accepted so far, in one SQLite file (safe across threads and processes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # one statement or transaction on the connection at a time
        self._cond = threading.Condition()  # group commit: the queue and who commits it
        self._queue: list[_Request] = []
        self._committing = False
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
        """Record `message_id` as accepted; MessageRefused if it is outside the window or seen.

        Returns once the id is durable. Threads accepting at the same time share
        one transaction and one fsync (group commit, see `_group`).
        """
        at = at or now()
        check_window(created_at, at)
        (refused,) = self._group([(message_id, created_at)], at)
        if refused is not None:
            raise refused

    def accept_many(
        self, messages: Sequence[tuple[str, datetime]], at: datetime | None = None
    ) -> list[MessageRefused | None]:
        """Record many (message id, created_at) at once: one transaction, one fsync.

        For a receiver holding several envelopes (a drained queue, a page of an
        inbox). One answer per entry, in order: None when it was accepted (durable
        when this returns), else the MessageRefused that `accept` would raise
        (outside the window; seen before, or earlier in the same call).
        """
        at = at or now()
        answers: list[MessageRefused | None] = [None] * len(messages)
        fresh: list[tuple[str, datetime]] = []
        where: list[int] = []
        for i, (message_id, created_at) in enumerate(messages):
            try:
                check_window(created_at, at)
            except MessageRefused as exc:
                answers[i] = exc
                continue
            fresh.append((message_id, created_at))
            where.append(i)
        for i, refused in zip(where, self._group(fresh, at), strict=True):
            answers[i] = refused
        return answers

    def _group(
        self, messages: list[tuple[str, datetime]], at: datetime
    ) -> list[MessageRefused | None]:
        """Insert `messages` in a transaction shared with every other caller waiting now.

        Leader and followers: a caller queues its request; if no commit is
        running it becomes the leader, takes the whole queue and commits it
        as one transaction (one fsync); callers that arrive meanwhile queue
        up and the next leader commits them together. Each caller returns
        only after the transaction holding its ids has committed; if that
        commit fails, every caller in it gets the StoreError and nothing of
        the batch is recorded (the transaction rolls back).
        """
        if not messages:
            return []
        request = _Request(messages, at)
        with self._cond:
            self._queue.append(request)
            while not request.done:
                if self._committing:
                    self._cond.wait()
                    continue
                self._committing = True
                batch, self._queue = self._queue, []
                self._cond.release()
                try:
                    self._commit(batch)
                finally:
                    self._cond.acquire()
                    self._committing = False
                    self._cond.notify_all()
        if request.error is not None:
            raise request.error
        return request.answers

    def _commit(self, batch: list[_Request]) -> None:
        """One write transaction for every request in `batch` (called by the leader only)."""
        seen: set[str] = set()
        with self._lock:
            try:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    stored = self._stored([m for r in batch for m, _ in r.messages])
                    rows: list[tuple[str, int, int]] = []
                    for request in batch:
                        answers = request.answers
                        stamp = int(request.at.timestamp())
                        for message_id, created_at in request.messages:
                            if message_id in stored or message_id in seen:
                                answers.append(
                                    MessageRefused(
                                        f"message {message_id} was already received",
                                        reason="replay",
                                    )
                                )
                                continue
                            seen.add(message_id)
                            rows.append((message_id, int(created_at.timestamp()), stamp))
                            answers.append(None)
                    # ids known absent (read inside this write transaction): one
                    # statement for the lot instead of one per id
                    self._db.executemany("INSERT INTO kez_seen_messages VALUES (?, ?, ?)", rows)
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                error = StoreError(
                    f"replay store {self.path}: {exc}",
                    hint="is it a KEZ replay store? A damaged one can be moved away (it only guards against repeats)",
                )
                for request in batch:
                    request.answers, request.error, request.done = [], error, True
                return
            except BaseException as exc:
                for request in batch:
                    request.answers, request.error, request.done = [], exc, True
                raise
            for request in batch:
                request.done = True
            before = self._accepted
            self._accepted += sum(a is None for r in batch for a in r.answers)
            if self._accepted // _PRUNE_EVERY != before // _PRUNE_EVERY:
                self._prune(max(r.at for r in batch))

    def _stored(self, ids: list[str]) -> set[str]:
        """Which of `ids` are already recorded (inside the caller's transaction)."""
        found: set[str] = set()
        for i in range(0, len(ids), _LOOKUP_CHUNK):
            part = ids[i : i + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(part))
            found.update(
                row[0]
                for row in self._db.execute(
                    f"SELECT id FROM kez_seen_messages WHERE id IN ({marks})", part
                )
            )
        return found

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
