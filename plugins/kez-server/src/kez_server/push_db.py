"""Web Push subscriptions in the server's database (table `kez_push_subscriptions`).

Synchronous, like `db.Store` whose engines and write transactions it uses;
the app calls it from the thread pool. One row per (handle, endpoint); a
handle keeps at most `MAX_PER_HANDLE` subscriptions, and a new one past
that replaces the oldest (browsers that went away leave theirs behind).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import attrs
import sqlalchemy as sa

from .db import Conflict, Store
from .schema import push_subscriptions as subs

MAX_PER_HANDLE = 50


def endpoint_hash(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode("utf-8")).hexdigest()


@attrs.frozen
class Subscription:
    handle: str
    endpoint: str
    p256dh: str
    auth: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "created_at": self.created_at}

    def info(self) -> dict[str, Any]:
        """The browser's `PushSubscription.toJSON()` shape, as pywebpush takes it."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


class PushStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def subscribe(self, sub: Subscription) -> bool:
        """Store `sub` (True), or renew the keys of the same (handle, endpoint) (False)."""
        key = endpoint_hash(sub.endpoint)
        for _attempt in range(3):
            try:
                with self.store._write() as conn:
                    done = conn.execute(
                        subs.update()
                        .where(subs.c.handle == sub.handle, subs.c.endpoint_hash == key)
                        .values(p256dh=sub.p256dh, auth=sub.auth)
                    )
                    if done.rowcount:
                        return False
                    conn.execute(
                        subs.insert(),
                        {
                            "handle": sub.handle,
                            "endpoint": sub.endpoint,
                            "endpoint_hash": key,
                            "p256dh": sub.p256dh,
                            "auth": sub.auth,
                            "created_at": sub.created_at,
                        },
                    )
                    self._trim(conn, sub.handle)
                    return True
            except Conflict:  # the same subscription inserted concurrently: update it
                continue
        return False

    def _trim(self, conn: sa.Connection, handle: str) -> None:
        keep = (
            sa.select(subs.c.id)
            .where(subs.c.handle == handle)
            .order_by(subs.c.id.desc())
            .limit(MAX_PER_HANDLE)
            .scalar_subquery()
        )
        conn.execute(subs.delete().where(subs.c.handle == handle, subs.c.id.not_in(keep)))

    def unsubscribe(self, handle: str, endpoint: str) -> bool:
        """Remove the subscription; False when there was none."""
        with self.store._write() as conn:
            done = conn.execute(
                subs.delete().where(
                    subs.c.handle == handle, subs.c.endpoint_hash == endpoint_hash(endpoint)
                )
            )
            return bool(done.rowcount)

    def drop_endpoint(self, endpoint: str) -> int:
        """Remove every subscription of `endpoint` (its push service said it is gone)."""
        with self.store._write() as conn:
            done = conn.execute(
                subs.delete().where(subs.c.endpoint_hash == endpoint_hash(endpoint))
            )
            return int(done.rowcount or 0)

    def subscriptions_of(self, handles: Iterable[str]) -> dict[str, list[Subscription]]:
        """`subscriptions(h)` of each of `handles` that has any, in one read per 500 handles."""
        wanted = sorted(set(handles))
        found: dict[str, list[Subscription]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self.store._rows(
                "SELECT handle, endpoint, p256dh, auth, created_at FROM kez_push_subscriptions "
                f"WHERE handle IN ({', '.join('?' * len(chunk))}) ORDER BY id",
                tuple(chunk),
            )
            for row in rows:
                found.setdefault(row[0], []).append(Subscription(*row))
        return found

    def subscriptions(self, handle: str) -> list[Subscription]:
        """The subscriptions of `handle`, oldest first.

        Read for every stored message, mostly to find none: the store's raw
        driver path, not SQLAlchemy's statement layer (several times cheaper).
        """
        rows = self.store._rows(
            "SELECT handle, endpoint, p256dh, auth, created_at FROM kez_push_subscriptions "
            "WHERE handle = ? ORDER BY id",
            (handle,),
        )
        return [Subscription(*row) for row in rows]
