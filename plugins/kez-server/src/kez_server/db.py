"""Storage: SQLAlchemy Core over SQLite (default) or PostgreSQL (several server processes).

All calls are synchronous; the app runs them in the thread pool. Reads
are single statements (on SQLite in autocommit mode, so readers never
queue behind a writer: WAL). Writes run in short transactions, on SQLite
opened with `BEGIN IMMEDIATE` so two writers never deadlock on a lock
upgrade. Concurrency between writers is decided by the database's unique
constraints, never by a check in Python followed by a write: a lost race
surfaces as `Conflict` and the caller re-reads and decides again.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from kez_core.sqlite import enable_wal
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from .config import ConfigError
from .schema import VERSION_TABLE, forks, handles, links, messages

__all__ = ["NOTIFY_CHANNEL", "Conflict", "Store", "database_url"]

MessageRow = tuple[
    str, str | None, str, str, int
]  # handle, route, envelope, received_at, received_unix

NOTIFY_CHANNEL = (
    "kez_inbox"  # PostgreSQL LISTEN/NOTIFY channel: "a message was stored for <handle>"
)


# alembic keeps its migration context in module globals: one migration at a
# time per process (across processes: the database's own lock, see env.py).
_MIGRATE_LOCK = threading.Lock()


class Conflict(Exception):
    """A unique constraint refused a write (another writer was first)."""


def database_url(db: str) -> str:
    """`--db` → SQLAlchemy URL: a path means SQLite; `postgresql://` uses psycopg 3."""
    db = db.strip()
    if not db:
        raise ConfigError("--db is empty", hint="a SQLite file path or a postgresql:// URL")
    for prefix in ("postgresql://", "postgres://"):
        if db.startswith(prefix):
            return "postgresql+psycopg://" + db[len(prefix) :]
    if db.startswith(("postgresql+", "sqlite://")):
        if db in ("sqlite://", "sqlite:///:memory:"):
            raise ConfigError(
                "an in-memory SQLite database is not supported", hint="give a file path"
            )
        return db
    if "://" in db:
        raise ConfigError(
            f"--db {db!r}: unsupported database URL",
            hint="use a SQLite file path or postgresql://user:pass@host/dbname",
        )
    if db == ":memory:":
        raise ConfigError("an in-memory SQLite database is not supported", hint="give a file path")
    return "sqlite:///" + str(Path(db).expanduser().resolve())


_SQLITE_CONNECT_ARGS = {"check_same_thread": False, "timeout": 30}


def _prepare_sqlite(dbapi_conn: Any) -> None:
    """Settings of every SQLite connection: autocommit at the driver level (we emit
    BEGIN ourselves, see `_begin`), WAL, synchronous=NORMAL, foreign keys."""
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    enable_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_engine(url: str) -> Engine:
    path = url[len("sqlite:///") :]
    if path and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        connect_args=dict(_SQLITE_CONNECT_ARGS),
        poolclass=sa.QueuePool,
        pool_size=16,
        max_overflow=32,
        pool_timeout=30,
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        _prepare_sqlite(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Writes take the write lock up front; reads run without a transaction.
        if conn.get_execution_options().get("kez_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _pg_engine(url: str, **kwargs: Any) -> Engine:
    return sa.create_engine(
        url, pool_size=10, max_overflow=20, pool_pre_ping=True, pool_timeout=30, **kwargs
    )


class Store:
    """The server's tables behind a small API (see the method docstrings)."""

    def __init__(self, db: str) -> None:
        self.url = database_url(db)
        if self.url.startswith("postgresql"):
            self.engine = _pg_engine(self.url)
            # reads: their own pool of autocommit connections (no BEGIN/ROLLBACK round trips)
            self._reader = _pg_engine(self.url, isolation_level="AUTOCOMMIT")
            self._mark = "%s"
            self._write_lock: threading.Lock | None = None
        else:
            self.engine = self._reader = _sqlite_engine(self.url)
            self._mark = "?"
            # one writer at a time in this process: SQLite has one write lock per
            # file, and waiting for it in SQLite's busy handler (sleeps of up to
            # 100 ms) makes long tails; other processes still wait in the handler
            self._write_lock = threading.Lock()
        # SQLite reads: one lasting driver connection per thread (see `_rows`)
        self._local: threading.local | None = (
            None if self.url.startswith("postgresql") else threading.local()
        )
        self._readers: dict[threading.Thread, Any] = {}
        self._readers_lock = threading.Lock()
        self.kind = self.engine.dialect.name  # "sqlite" or "postgresql"
        self.inline_reads = self.kind == "sqlite"  # see KezServer.read
        self._sql: dict[str, str] = {}

    # ------------------------------------------------------------ lifecycle

    def migrate(self) -> None:
        """Bring the schema to the newest revision (alembic `upgrade head`); idempotent."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", "kez_server:migrations")
        cfg.set_main_option("version_table", VERSION_TABLE)
        with _MIGRATE_LOCK, self.engine.connect() as conn:
            conn.execution_options(kez_write=True)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()

    def revision(self) -> str | None:
        """The schema revision stored in the database (None before the first migration)."""
        with self._reader.connect() as conn:
            try:
                return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
            except sa.exc.DBAPIError:
                return None

    def ping(self) -> None:
        """Raise unless the database answers."""
        with self._reader.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar()

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers.values():
                with contextlib.suppress(Exception):
                    conn.close()
            self._readers.clear()
        if self._local is not None:
            self._local = threading.local()  # a read after close opens afresh
        self.engine.dispose()
        if self._reader is not self.engine:
            self._reader.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        lock = self._write_lock or contextlib.nullcontext()
        with lock, self.engine.connect() as conn:
            conn.execution_options(kez_write=True)
            try:
                with conn.begin():
                    yield conn
            except sa.exc.IntegrityError as exc:
                raise Conflict(str(exc.orig)) from exc

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """A read on a driver connection: the hot paths skip SQLAlchemy's statement layer
        (a lookup costs ~25 µs this way, ~180 µs through Core). `?` marks parameters.

        On SQLite each thread keeps its own connection (autocommit: every read
        sees the newest commit, WAL) instead of taking one from the pool: the
        pool's checkout and reset-on-return cost more than a lookup, and the
        event loop's inline reads (KezServer.read) run one after another.
        """
        text = self._sql.get(sql)
        if text is None:
            text = self._sql[sql] = sql.replace("?", self._mark)
        if self._local is not None:
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self._thread_reader()
            cursor = conn.execute(text, params)
            try:
                return cursor.fetchall()
            finally:
                cursor.close()
        conn = self._reader.raw_connection()
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(text, params)
                return cursor.fetchall()
            finally:
                cursor.close()
        finally:
            conn.close()  # back to the pool

    def _thread_reader(self) -> Any:
        """A new SQLite connection for the calling thread; closes those of threads that ended
        (pool threads come and go)."""
        dialect = self._reader.dialect
        cargs, cparams = dialect.create_connect_args(sa.engine.make_url(self.url))
        conn = dialect.connect(*cargs, **{**cparams, **_SQLITE_CONNECT_ARGS})
        _prepare_sqlite(conn)
        with self._readers_lock:
            for thread in [t for t in self._readers if not t.is_alive()]:
                with contextlib.suppress(Exception):
                    self._readers.pop(thread).close()
            self._readers[threading.current_thread()] = conn
        return conn

    # --------------------------------------------------------------- chains

    def chain_ids(self, identity: str, start: int = 1) -> list[tuple[int, str]]:
        """(seqno, link id) of the stored links of `identity` from seqno `start` on, in order."""
        rows = self._rows(
            "SELECT seqno, link_id FROM kez_links WHERE identity = ? AND seqno >= ? ORDER BY seqno",
            (identity, start),
        )
        return [(int(s), i) for s, i in rows]

    def head(self, identity: str) -> tuple[int, str] | None:
        """(seqno, id) of the last stored link, or None for an unknown identity."""
        rows = self._rows(
            "SELECT seqno, link_id FROM kez_links WHERE identity = ? ORDER BY seqno DESC LIMIT 1",
            (identity,),
        )
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def chain_lines(self, identity: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` (seqno, canonical line) with seqno > `after`, in order."""
        rows = self._rows(
            "SELECT seqno, line FROM kez_links WHERE identity = ? AND seqno > ? ORDER BY seqno LIMIT ?",
            (identity, after, limit),
        )
        return [(int(s), bytes(line)) for s, line in rows]

    def chain_bytes(self, identity: str, upto: int) -> int:
        """Bytes of the stored links of `identity` up to seqno `upto` (for the identity quota)."""
        rows = self._rows(
            "SELECT coalesce(sum(length(line)), 0) FROM kez_links"
            " WHERE identity = ? AND seqno <= ?",
            (identity, upto),
        )
        return int(rows[0][0])

    def insert_links(
        self, identity: str, rows: Sequence[tuple[int, str, bytes]], stored_at: str
    ) -> None:
        """Store new links (seqno, id, canonical line) in one transaction; Conflict if a seqno is taken."""
        if not rows:
            return
        values = [
            {"identity": identity, "seqno": s, "link_id": i, "line": line, "stored_at": stored_at}
            for s, i, line in rows
        ]
        with self._write() as conn:
            conn.execute(links.insert(), values)

    def add_fork(
        self, identity: str, seqno: int, stored_id: str, link_id: str, line: bytes, seen: str
    ) -> bool:
        """Keep a conflicting link as fork evidence; False when it was already kept."""
        try:
            with self._write() as conn:
                conn.execute(
                    forks.insert(),
                    {
                        "identity": identity,
                        "seqno": seqno,
                        "stored_id": stored_id,
                        "link_id": link_id,
                        "line": line,
                        "first_seen": seen,
                    },
                )
        except Conflict:
            return False
        return True

    def forks(self, identity: str) -> list[dict[str, Any]]:
        """Fork evidence of `identity`, oldest first."""
        stmt = (
            sa.select(
                forks.c.seqno, forks.c.stored_id, forks.c.link_id, forks.c.line, forks.c.first_seen
            )
            .where(forks.c.identity == identity)
            .order_by(forks.c.seqno, forks.c.id)
        )
        with self._reader.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]

    # -------------------------------------------------------------- handles

    def lookup(self, handle: str) -> dict[str, Any] | None:
        """{handle, primary_key, identity, registered_at} or None (`identity` is never NULL here)."""
        rows = self._rows(
            "SELECT handle, primary_key, identity, registered_at FROM kez_handles WHERE handle = ?",
            (handle,),
        )
        if not rows:
            return None
        handle, primary, identity, registered_at = rows[0]
        return {
            "handle": handle,
            "primary_key": primary,
            "identity": identity or primary,
            "registered_at": registered_at,
        }

    def lookup_with_head(self, handle: str) -> dict[str, Any] | None:
        """`lookup(handle)` plus `head`: the link id at the head of the identity's stored
        chain (None: no chain here), in one query instead of two. The inbox reads and
        deletes want both (the row, and whether the cached keys are still at the head)."""
        rows = self._rows(
            "SELECT h.handle, h.primary_key, h.identity, h.registered_at,"
            " (SELECT l.link_id FROM kez_links l WHERE l.identity = COALESCE(h.identity, h.primary_key)"
            " ORDER BY l.seqno DESC LIMIT 1)"
            " FROM kez_handles h WHERE h.handle = ?",
            (handle,),
        )
        if not rows:
            return None
        handle, primary, identity, registered_at, head = rows[0]
        return {
            "handle": handle,
            "primary_key": primary,
            "identity": identity or primary,
            "registered_at": registered_at,
            "head": head,
        }

    def registered(self) -> list[tuple[str, str]]:
        """(handle, identity id) of every registration, in handle order."""
        rows = self._rows(
            "SELECT handle, COALESCE(identity, primary_key) FROM kez_handles ORDER BY handle", ()
        )
        return [(h, i) for h, i in rows]

    def handle_of(self, primary: str) -> str | None:
        rows = self._rows("SELECT handle FROM kez_handles WHERE primary_key = ?", (primary,))
        return rows[0][0] if rows else None

    def handle_of_identity(self, identity: str) -> str | None:
        """The handle registered for the identity `identity` (its id, whatever its primary now)."""
        rows = self._rows(
            "SELECT handle FROM kez_handles WHERE identity = ? OR (identity IS NULL AND primary_key = ?)",
            (identity, identity),
        )
        return rows[0][0] if rows else None

    def register(
        self,
        handle: str,
        primary: str,
        envelope_id: str,
        envelope: bytes,
        registered_at: str,
        identity: str | None = None,
    ) -> str | None:
        """Store a registration. None on success, else why not: `replay`, `handle_taken`, `primary_taken`."""
        try:
            with self._write() as conn:
                conn.execute(
                    handles.insert(),
                    {
                        "handle": handle,
                        "primary_key": primary,
                        "identity": None if identity in (None, primary) else identity,
                        "envelope_id": envelope_id,
                        "envelope": envelope,
                        "registered_at": registered_at,
                    },
                )
            return None
        except Conflict:
            pass
        return self._refusal(envelope_id, handle)

    def move_handle(
        self,
        handle: str,
        old_primary: str,
        primary: str,
        identity: str,
        envelope_id: str,
        envelope: bytes,
        registered_at: str,
    ) -> str | None:
        """Give `handle` a new primary key of the same identity (after a rotation).

        Only while the row still names `old_primary`, so of two racing moves
        one wins and the other is told `changed`. None on success, else
        `replay`, `primary_taken` or `changed`.
        """
        try:
            with self._write() as conn:
                done = conn.execute(
                    handles.update()
                    .where(handles.c.handle == handle, handles.c.primary_key == old_primary)
                    .values(
                        primary_key=primary,
                        identity=None if identity == primary else identity,
                        envelope_id=envelope_id,
                        envelope=envelope,
                        registered_at=registered_at,
                    )
                )
                if done.rowcount != 1:
                    return "changed"
            return None
        except Conflict:
            pass
        return self._refusal(envelope_id)  # the row's handle is ours: not handle_taken

    def handle_by_key(self, key: str) -> dict[str, Any] | None:
        """The handle whose primary or identity id is `key` (the reverse lookup), or None."""
        rows = self._rows(
            "SELECT handle FROM kez_handles WHERE primary_key = ? OR identity = ? ORDER BY handle LIMIT 1",
            (key, key),
        )
        return self.lookup(rows[0][0]) if rows else None

    # ---------------------------------------------------------------- inbox

    def store_message(
        self, handle: str, route: str | None, envelope: str, received_at: str, received_unix: int
    ) -> int:
        """Store one envelope for `handle`; its seq (see `store_messages`)."""
        return self.store_messages([(handle, route, envelope, received_at, received_unix)])[0]

    def store_messages(self, rows: Sequence[MessageRow]) -> list[int]:
        """Store envelopes (handle, route, envelope, received_at, received_unix) in ONE
        transaction; their seqs, in order. Returns only after the commit.

        A batch shares one commit (and one WAL sync point), which is what lets
        the inbox group concurrent POSTs (inbox_writer.py). It runs on the
        driver connection: SQLAlchemy's statement layer costs more than the
        insert itself.

        On PostgreSQL the transaction first holds a per-handle advisory lock
        (taken in sorted order, so two batches never deadlock) until it
        commits, so one handle's seqs become visible in increasing order (a
        reader's cursor never skips a row committed late), and the commit
        sends NOTIFY once per handle so the other server nodes wake their
        live readers.
        """
        if not rows:
            return []
        postgres = self.kind == "postgresql"
        insert = (
            "INSERT INTO kez_messages (handle, route, envelope, received_at, received_unix)"
            " VALUES (?, ?, ?, ?, ?)"
        ).replace("?", self._mark)
        lock = self._write_lock or contextlib.nullcontext()
        with lock:
            conn = self.engine.raw_connection()
            try:
                cursor = conn.cursor()
                try:
                    seqs: list[int] = []
                    if postgres:
                        for handle in sorted({row[0] for row in rows}):
                            cursor.execute(
                                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                                ("kez_inbox:" + handle,),
                            )
                        for row in rows:
                            cursor.execute(insert + " RETURNING seq", row)
                            seqs.append(int(cursor.fetchone()[0]))
                        for handle in sorted({row[0] for row in rows}):
                            cursor.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, handle))
                        conn.commit()
                    else:
                        cursor.execute("BEGIN IMMEDIATE")
                        try:
                            for row in rows:
                                cursor.execute(insert, row)
                                seqs.append(int(cursor.lastrowid))
                            cursor.execute("COMMIT")
                        except BaseException:
                            with contextlib.suppress(Exception):
                                cursor.execute("ROLLBACK")
                            raise
                    return seqs
                finally:
                    cursor.close()
            finally:
                conn.close()  # back to the pool (a PostgreSQL transaction left open is rolled back)

    def inbox(
        self, handle: str, since: int, limit: int, newer_than: int
    ) -> list[tuple[int, str, str, str | None]]:
        """Up to `limit` (seq, envelope, received_at, route) of `handle` with seq > `since`,
        received at or after unix time `newer_than`, in seq order."""
        rows = self._rows(
            "SELECT seq, envelope, received_at, route FROM kez_messages "
            "WHERE handle = ? AND seq > ? AND received_unix >= ? ORDER BY seq LIMIT ?",
            (handle, since, newer_than, limit),
        )
        return [(int(q), e, r, route) for q, e, r, route in rows]

    def last_seq(self) -> int:
        """The highest seq stored on this server (0 when none)."""
        rows = self._rows("SELECT MAX(seq) FROM kez_messages", ())
        return int(rows[0][0] or 0)

    def drop_messages(self, handle: str, through: int) -> int:
        """Delete the envelopes of `handle` with seq <= `through`; how many went."""
        with self._write() as conn:
            done = conn.execute(
                messages.delete().where(messages.c.handle == handle, messages.c.seq <= through)
            )
            return int(done.rowcount or 0)

    def purge_messages(self, before_unix: int) -> int:
        """Delete every envelope received before unix time `before_unix`; how many went."""
        with self._write() as conn:
            done = conn.execute(messages.delete().where(messages.c.received_unix < before_unix))
            return int(done.rowcount or 0)

    def _refusal(self, envelope_id: str, handle: str | None = None) -> str:
        """Which unique constraint refused a write: `replay`, `handle_taken` (asked only when
        `handle` is given), else `primary_taken`. Rows are never deleted, so this is stable."""
        with self._reader.connect() as conn:
            if conn.execute(
                sa.select(handles.c.handle).where(handles.c.envelope_id == envelope_id)
            ).first():
                return "replay"
            if (
                handle is not None
                and conn.execute(
                    sa.select(handles.c.handle).where(handles.c.handle == handle)
                ).first()
            ):
                return "handle_taken"
        return "primary_taken"


def describe(url: str) -> str:
    """The database URL without a password, for logs."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return url.split("@")[-1]
