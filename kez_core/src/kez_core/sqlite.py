"""SQLite helpers shared by the stores that keep state in a file (replay store, kez-server)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

__all__ = ["enable_wal"]


def enable_wal(cursor: Any, *, deadline_s: float = 30.0) -> None:
    """Switch the file to WAL (persistent: a no-op once any connection did it).

    `cursor` is a DB-API cursor or connection of the `sqlite3` module. The
    switch upgrades a shared lock to an exclusive one, and SQLite does not run
    the busy handler for lock upgrades (two upgraders would deadlock), so
    processes opening a fresh file together get `database is locked` at once.
    This retries with short sleeps instead; once one of them wins, the file is
    WAL and the others see it on their next look.
    """
    give_up = time.monotonic() + deadline_s
    pause = 0.005
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > give_up:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
