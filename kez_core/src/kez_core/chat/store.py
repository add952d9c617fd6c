"""The local message store of one identity: `chat.db` in its folder (docs/spec.md §12, "Local store").

SQLite in WAL mode with a busy timeout, every write one `BEGIN IMMEDIATE`
transaction, so two processes (a `listen` and a `send`) can use one store at
once and a failed write leaves what was stored before. The schema is
versioned with `PRAGMA user_version` and moved forward by `MIGRATIONS`.

Message bodies are encrypted at rest with ChaCha20-Poly1305 under a random
32-byte store key; the associated data is the row's message key, so a body
copied onto another row does not open. The store key is kept like the
inbox secrets: PKCS#8 PEM, encrypted with the identity's passphrase when the
identity's key is (`chat.key`, mode 0600, created once, never replaced). A
32-byte X25519 secret is 32 random bytes, so that key type carries it and
the one passphrase-wrapping format the project already uses does the work.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ..errors import DecodeError, PassphraseError, StoreError
from ..keyfiles import exclusive_write
from ..sqlite import enable_wal
from ..timefmt import format_time, now

DB_FILE = "chat.db"
KEY_FILE = "chat.key"
STATES = ("sending", "sent", "delivered", "read")
DIRECTIONS = ("in", "out")

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # version 1
        "CREATE TABLE contacts (name TEXT PRIMARY KEY, identity TEXT NOT NULL UNIQUE,"
        " handle TEXT, blocked INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL)",
        "CREATE TABLE pins (handle TEXT PRIMARY KEY, identity TEXT NOT NULL, pinned_at TEXT NOT NULL)",
        "CREATE TABLE messages (key TEXT PRIMARY KEY, peer TEXT NOT NULL, direction TEXT NOT NULL,"
        " state TEXT NOT NULL, created_at TEXT NOT NULL, stranger INTEGER NOT NULL DEFAULT 0,"
        " unread INTEGER NOT NULL DEFAULT 0, body BLOB NOT NULL, seq INTEGER NOT NULL)",
        "CREATE INDEX messages_by_peer ON messages (peer, seq)",
        # the ids of the signed objects an outgoing message was sent as (one per inbox key)
        "CREATE TABLE sent_ids (message_id TEXT PRIMARY KEY, key TEXT NOT NULL)",
        "CREATE TABLE pending_acks (peer TEXT NOT NULL, message_id TEXT NOT NULL,"
        " queued_at TEXT NOT NULL, PRIMARY KEY (peer, message_id))",
    ),
    (  # version 2: files (kez_core.chat.files); meta and chunk data sealed like bodies
        "CREATE TABLE transfers (peer TEXT NOT NULL, id TEXT NOT NULL, direction TEXT NOT NULL, key TEXT,"
        " state TEXT NOT NULL, meta BLOB NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (peer, id, direction))",
        "CREATE TABLE in_chunks (peer TEXT NOT NULL, transfer TEXT NOT NULL, idx INTEGER NOT NULL,"
        " data BLOB NOT NULL, PRIMARY KEY (peer, transfer, idx))",
        "CREATE TABLE out_chunks (transfer TEXT NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (transfer, idx))",
    ),
    (  # version 3: the transports a message went out or came in by ("nats", "http, nostr"), for "via …"
        "CREATE TABLE message_via (key TEXT PRIMARY KEY, via TEXT NOT NULL)",
    ),
    (  # version 4: a received chunk's sealed bytes sit in its transfer's spool file at offset `at`
        # (kez_core.chat.files); `data` is then empty. Rows from before keep their bytes in `data`.
        "ALTER TABLE in_chunks ADD COLUMN at INTEGER",
    ),
)


@attrs.frozen
class Contact:
    name: str
    identity: str
    handle: str | None
    blocked: bool
    created_at: str


@attrs.frozen
class Entry:
    """One message of a conversation, decrypted."""

    key: str  # the message id (incoming) or the first envelope's message id (outgoing)
    peer: str
    direction: str
    state: str
    created_at: str
    stranger: bool
    unread: bool
    body: dict[str, Any]
    via: str | None = None  # the transports it went out or came in by, e.g. "nats, nostr"

    def to_json(self) -> dict[str, Any]:
        """The `history --json` entry (docs/cli.md): id, direction, state, created_at, text."""
        out: dict[str, Any] = {
            "id": self.key,
            "direction": self.direction,
            "state": self.state,
            "created_at": self.created_at,
            "text": self.body.get("text") if isinstance(self.body.get("text"), str) else None,
        }
        if self.stranger:
            out["stranger"] = True
        if self.via:
            out["via"] = self.via
        if isinstance(self.body.get("file"), dict):
            out["file"] = self.body["file"]
        return out


def load_store_key(folder: Path, passphrase: Callable[[], bytes | None], encrypted: bool) -> bytes:
    """The store key of the identity in `folder`, made on first use (see the module docstring)."""
    path = folder / KEY_FILE
    if not path.exists():
        secret = X25519PrivateKey.generate()
        password = passphrase() if encrypted else None
        encryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        pem = secret.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        try:
            exclusive_write(path, pem, 0o600)
        except FileExistsError:
            pass  # another process made it first: read theirs
        except OSError as exc:
            raise StoreError(f"cannot store the message store key {path}: {exc}") from exc
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot read the message store key {path}: {exc}") from exc
    wrapped = b"ENCRYPTED" in pem
    try:
        key = serialization.load_pem_private_key(pem, passphrase() if wrapped else None)
    except (ValueError, TypeError) as exc:
        if wrapped:
            raise PassphraseError(
                "the passphrase does not open the message store key",
                hint="it is the identity's passphrase",
            ) from exc
        raise StoreError(f"the message store key {path} is damaged: {exc}") from exc
    if not isinstance(key, X25519PrivateKey):
        raise StoreError(f"{path} does not hold a message store key")
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def seal_bytes(key: bytes, ad: str, data: bytes | memoryview) -> bytes:
    """nonce (12 bytes) + ChaCha20-Poly1305 of `data` under the store key, bound to `ad`
    (what the bytes are: a row's key, a chunk's transfer and index). Everything the store
    keeps at rest is sealed here."""
    nonce = os.urandom(12)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, data, ad.encode())


def open_bytes(key: bytes, ad: str, blob: bytes) -> bytes:
    """The bytes `seal_bytes` sealed for `ad`; InvalidTag or ValueError when they were not."""
    return ChaCha20Poly1305(key).decrypt(blob[:12], blob[12:], ad.encode())


def seal_body(key: bytes, row_key: str, body: dict[str, Any]) -> bytes:
    """`seal_bytes` of the body's JSON, bound to the row's key."""
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return seal_bytes(key, row_key, data)


def open_body(key: bytes, row_key: str, blob: bytes) -> dict[str, Any]:
    """The body sealed by `seal_body`; DecodeError when it was not sealed for this row with this key."""
    if not isinstance(blob, bytes) or len(blob) < 12 + 16:
        raise DecodeError("a stored message body is too short")
    try:
        data = open_bytes(key, row_key, blob)
    except InvalidTag:
        raise DecodeError("a stored message body does not open with this store key") from None
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise DecodeError(f"a stored message body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise DecodeError("a stored message body is not a JSON object")
    return body


class ChatStore:
    """Contacts, pins, conversations and the ack queue of one identity (see the module docstring)."""

    def __init__(self, path: str | Path, key: bytes) -> None:
        self.path = Path(path)
        self._key = key
        self._lock = threading.RLock()  # reentrant: writes inside batch()
        # work tied to the open write transaction (on_commit): name -> (before, after)
        self._hooks: dict[str, tuple[Callable[[], None] | None, Callable[[], None] | None]] = {}
        db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            enable_wal(self._db)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._migrate()
            # `max(seq)` on every insert scanned the whole table (the index is by peer): quadratic
            # over a history. Made here, idempotent, rather than as a schema version, so stores of
            # every version get it; a later migration may take it over.
            self._db.execute("CREATE INDEX IF NOT EXISTS messages_by_seq ON messages (seq)")
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            raise StoreError(f"cannot open the message store {self.path}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"cannot open the message store {self.path}: {exc}") from exc

    # ---------------------------------------------------------------- plumbing

    def _migrate(self) -> None:
        with self._write() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"the message store {self.path} is from a newer kez (schema {version})",
                    hint="upgrade kez",
                )
            for number in range(version, len(MIGRATIONS)):
                for sql in MIGRATIONS[number]:
                    db.execute(sql)
                db.execute(f"PRAGMA user_version={number + 1}")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit: every write of this thread inside the block goes in one transaction (one
        fsync), each as a savepoint so a write that fails undoes only itself. Used by the service
        for a backlog (`receive_many`, `send_texts`); other threads wait until the block ends."""
        with self._write():
            yield

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with BEGIN IMMEDIATE (the replay store's reason);
        inside `batch()`, a savepoint of its transaction."""
        with self._lock:
            if self._db.in_transaction:
                yield from self._savepoint()
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._hooks = {}
                try:
                    yield self._db
                    for before, _ in list(self._hooks.values()):
                        if before is not None:
                            before()
                    self._db.execute("COMMIT")
                except BaseException:
                    self._hooks = {}
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"message store {self.path}: {exc}") from exc
            except OSError as exc:  # a before-commit hook (an fsync) failed: nothing was committed
                raise StoreError(f"message store {self.path}: {exc}") from exc
            hooks, self._hooks = self._hooks, {}
            for _, after in hooks.values():
                if after is not None:
                    try:
                        after()
                    except OSError:
                        pass  # after the commit, only cleanup runs (a leftover file is harmless)

    def _savepoint(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("SAVEPOINT kez_write")
            hooks = dict(self._hooks)
            try:
                yield self._db
                self._db.execute("RELEASE kez_write")
            except BaseException:
                self._hooks = hooks  # what the undone write asked for is undone with it
                self._db.execute("ROLLBACK TO kez_write")
                self._db.execute("RELEASE kez_write")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"message store {self.path}: {exc}") from exc

    def on_commit(
        self,
        name: str,
        *,
        before: Callable[[], None] | None = None,
        after: Callable[[], None] | None = None,
    ) -> None:
        """Tie work outside SQLite to the open write transaction (call it inside `_write`):
        `before` runs just before it commits (an fsync of a file its rows point into: an
        OSError there rolls the transaction back), `after` just after (removing a file
        its rows no longer name). One pair per `name` per transaction; none if it rolls back."""
        if not self._db.in_transaction:
            raise StoreError("on_commit outside a write transaction")
        self._hooks.setdefault(name, (before, after))

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return list(self._db.execute(sql, params).fetchall())
            except sqlite3.Error as exc:
                raise StoreError(f"message store {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- contacts and pins

    def add_contact(self, name: str, identity: str, handle: str | None = None) -> Contact:
        with self._write() as db:
            if db.execute("SELECT 1 FROM contacts WHERE name = ?", (name,)).fetchone():
                raise StoreError(
                    f"a contact named {name!r} exists",
                    hint="pick another name, or `kez contact rename`",
                )
            known = db.execute(
                "SELECT name FROM contacts WHERE identity = ?", (identity,)
            ).fetchone()
            if known:
                raise StoreError(
                    f"{identity} is already the contact {known[0]!r}",
                    hint="`kez contact rename` it",
                )
            db.execute(
                "INSERT INTO contacts VALUES (?, ?, ?, 0, ?)",
                (name, identity, handle, format_time(now())),
            )
            db.execute("UPDATE messages SET stranger = 0 WHERE peer = ?", (identity,))
        return self.contact(name)  # type: ignore[return-value]

    def contacts(self) -> list[Contact]:
        rows = self._read(
            "SELECT name, identity, handle, blocked, created_at FROM contacts ORDER BY name"
        )
        return [Contact(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]

    def contact(self, name: str) -> Contact | None:
        return next((c for c in self.contacts() if c.name == name), None)

    def contact_for(self, identity: str) -> Contact | None:
        return next((c for c in self.contacts() if c.identity == identity), None)

    def _one_contact(self, db: sqlite3.Connection, name: str) -> None:
        if not db.execute("SELECT 1 FROM contacts WHERE name = ?", (name,)).fetchone():
            raise StoreError(f"no contact named {name!r}", hint="`kez contact list` shows them")

    def rename_contact(self, old: str, new: str) -> None:
        with self._write() as db:
            self._one_contact(db, old)
            if db.execute("SELECT 1 FROM contacts WHERE name = ?", (new,)).fetchone():
                raise StoreError(f"a contact named {new!r} exists")
            db.execute("UPDATE contacts SET name = ? WHERE name = ?", (new, old))

    def remove_contact(self, name: str) -> None:
        with self._write() as db:
            self._one_contact(db, name)
            db.execute("DELETE FROM contacts WHERE name = ?", (name,))

    def set_blocked(self, name: str, blocked: bool) -> None:
        with self._write() as db:
            self._one_contact(db, name)
            db.execute("UPDATE contacts SET blocked = ? WHERE name = ?", (int(blocked), name))

    def block_identity(self, identity: str, name: str) -> None:
        """Block someone who is not a contact yet: they become a blocked contact named `name`."""
        with self._write() as db:
            db.execute(
                "INSERT INTO contacts VALUES (?, ?, NULL, 1, ?) ON CONFLICT (identity) DO UPDATE SET blocked = 1",
                (name, identity, format_time(now())),
            )

    def pin(self, handle: str) -> str | None:
        rows = self._read("SELECT identity FROM pins WHERE handle = ?", (handle,))
        return rows[0][0] if rows else None

    def set_pin(self, handle: str, identity: str) -> None:
        """Pin `handle` to `identity` on first contact; a pin is never replaced here."""
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO pins VALUES (?, ?, ?)",
                (handle, identity, format_time(now())),
            )

    def pinned_handles(self, identity: str) -> list[str]:
        return [
            r[0]
            for r in self._read(
                "SELECT handle FROM pins WHERE identity = ? ORDER BY handle", (identity,)
            )
        ]

    # ---------------------------------------------------------------- messages

    def add_outgoing(self, key: str, peer: str, created_at: str, body: dict[str, Any]) -> None:
        """Store an outgoing message as `sending` before any transport sees it (the local echo)."""
        with self._write() as db:
            db.execute(
                "INSERT INTO messages VALUES (?, ?, 'out', 'sending', ?, 0, 0, ?, "
                "(SELECT coalesce(max(seq), 0) + 1 FROM messages))",
                (key, peer, created_at, seal_body(self._key, key, body)),
            )

    def add_via(self, key: str, routes: list[str]) -> None:
        """Record the transports message `key` went out or came in by (merged with earlier ones)."""
        if not routes:
            return
        with self._write() as db:
            row = db.execute("SELECT via FROM message_via WHERE key = ?", (key,)).fetchone()
            names = sorted({*(row[0].split(", ") if row else ()), *routes})
            db.execute("INSERT OR REPLACE INTO message_via VALUES (?, ?)", (key, ", ".join(names)))

    def add_sent_ids(self, key: str, message_ids: list[str]) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO sent_ids VALUES (?, ?)", [(i, key) for i in message_ids]
            )

    def add_incoming(
        self,
        key: str,
        peer: str,
        created_at: str,
        body: dict[str, Any],
        *,
        stranger: bool,
        ack: bool = True,
    ) -> bool:
        """Store a received message and queue its ack in one transaction; False when already stored."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO messages VALUES (?, ?, 'in', 'delivered', ?, ?, 1, ?, "
                "(SELECT coalesce(max(seq), 0) + 1 FROM messages))",
                (key, peer, created_at, int(stranger), seal_body(self._key, key, body)),
            )
            if cursor.rowcount != 1:
                return False
            if ack:
                db.execute(
                    "INSERT OR IGNORE INTO pending_acks VALUES (?, ?, ?)",
                    (peer, key, format_time(now())),
                )
        return True

    def add_sent_copy(
        self, key: str, peer: str, created_at: str, body: dict[str, Any], message_ids: list[str]
    ) -> bool:
        """Store what another device of this identity sent to `peer` (kez_core.chat.sent_copy):
        outgoing, `sent`, under its history id, with the message ids an ack may name; one
        transaction, no ack; False when already stored (a repeat changes nothing)."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO messages VALUES (?, ?, 'out', 'sent', ?, 0, 0, ?, "
                "(SELECT coalesce(max(seq), 0) + 1 FROM messages))",
                (key, peer, created_at, seal_body(self._key, key, body)),
            )
            if cursor.rowcount != 1:
                return False
            db.executemany(
                "INSERT OR IGNORE INTO sent_ids VALUES (?, ?)", [(i, key) for i in message_ids]
            )
        return True

    def has_message(self, key: str) -> bool:
        """Is a history entry stored under `key`? (A message stored before a crash, see `receive`.)"""
        return bool(self._read("SELECT 1 FROM messages WHERE key = ?", (key,)))

    def queue_ack(self, peer: str, message_id: str) -> None:
        """Queue an ack for a received message that is not kept in the history (a profile key)."""
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO pending_acks VALUES (?, ?, ?)",
                (peer, message_id, format_time(now())),
            )

    def set_state(self, key: str, state: str, *, only_from: tuple[str, ...]) -> bool:
        """Move an outgoing message to `state` if it is in one of `only_from` (states only go forward)."""
        if state not in STATES:
            raise ValueError(state)
        marks = ",".join("?" * len(only_from))
        with self._write() as db:
            changed = db.execute(
                f"UPDATE messages SET state = ? WHERE key = ? AND direction = 'out' AND state IN ({marks})",
                (state, key, *only_from),
            ).rowcount
        return changed == 1

    def state_of(self, key: str) -> str | None:
        """The state of the message with history id `key`, or None when there is none."""
        rows = self._read("SELECT state FROM messages WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def outgoing_for(self, message_id: str, peer: str) -> str | None:
        """The outgoing message to `peer` that was sent as signed message `message_id`, if any."""
        rows = self._read(
            "SELECT m.key FROM sent_ids s JOIN messages m ON m.key = s.key"
            " WHERE s.message_id = ? AND m.peer = ? AND m.direction = 'out'",
            (message_id, peer),
        )
        return rows[0][0] if rows else None

    def pending_acks(self) -> dict[str, list[str]]:
        """Message ids still to ack, by peer identity, oldest first."""
        out: dict[str, list[str]] = {}
        for peer, message_id in self._read(
            "SELECT peer, message_id FROM pending_acks ORDER BY queued_at, message_id"
        ):
            out.setdefault(peer, []).append(message_id)
        return out

    def acked(self, peer: str, message_ids: list[str]) -> None:
        with self._write() as db:
            db.executemany(
                "DELETE FROM pending_acks WHERE peer = ? AND message_id = ?",
                [(peer, i) for i in message_ids],
            )

    def history(
        self, peer: str, *, mark_read: bool = True, start: int = 0, limit: int | None = None
    ) -> list[Entry]:
        """The conversation with `peer`, oldest first; `start`/`limit` give a window of it (as
        `[start:start + limit]`), so a UI showing the latest messages of a long history opens
        only those bodies. Reading unread messages marks the whole conversation read."""
        rows = self._read(
            "SELECT m.key, peer, direction, state, created_at, stranger, unread, body, v.via FROM messages m"
            " LEFT JOIN message_via v ON v.key = m.key WHERE peer = ? ORDER BY seq LIMIT ? OFFSET ?",
            (peer, -1 if limit is None else max(0, limit), max(0, start)),
        )
        entries = [
            Entry(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                bool(r[5]),
                bool(r[6]),
                open_body(self._key, r[0], r[7]),
                r[8],
            )
            for r in rows
        ]
        if mark_read and any(e.unread for e in entries):
            with self._write() as db:
                db.execute("UPDATE messages SET unread = 0 WHERE peer = ?", (peer,))
        return entries

    def history_length(self, peer: str) -> int:
        """How many messages the conversation with `peer` has (for windows of `history`)."""
        return int(self._read("SELECT count(*) FROM messages WHERE peer = ?", (peer,))[0][0])

    def conversations(self) -> list[dict[str, Any]]:
        """One row per peer: its identity, message count, unread count, last time, stranger or not."""
        rows = self._read(
            "SELECT peer, count(*), sum(unread), max(created_at), max(stranger), max(seq) FROM messages"
            " GROUP BY peer ORDER BY max(seq) DESC"
        )
        contacts = {c.identity: c for c in self.contacts()}
        out = []
        for peer, total, unread, last, stranger, _ in rows:
            contact = contacts.get(peer)
            out.append(
                {
                    "peer": peer,
                    "contact": contact.name if contact else None,
                    "handle": (contact.handle if contact else None)
                    or next(iter(self.pinned_handles(peer)), None),
                    "messages": int(total),
                    "unread": int(unread or 0),
                    "last_at": last,
                    "stranger": contact is None and bool(stranger),
                }
            )
        return out
