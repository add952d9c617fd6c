"""Files over messages (DESIGN §6, seeds 004; docs/spec.md §12 "Files"): inline, or chunks then a pointer.

A file of at most `INLINE_MAX` bytes whose inline message fits every route's
largest envelope travels as one message (`kind: "file"` with `data`). A
larger one, up to `FILE_MAX`, is cut into chunks (`kind: "file_chunk"`),
each its own message sized to the smallest `max_envelope` of the routes,
and then a pointer (`kind: "file"` with `transfer`) is sent last: it is the
message a person sees. Chunks may arrive in any order and more than once;
the receiver keeps them encrypted at rest in the chat store, so a transfer
resumes after either side restarts, and assembles the file once every
chunk and the pointer are there, checks its SHA-256 and only then saves it
(a fresh, sanitised name in the identity's `files/` folder; nothing is ever
overwritten). Chunks are not history entries and are not acked; the
pointer's ack is sent once the file is complete, so `delivered` means the
file arrived whole.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..errors import ExitCode, KezError, SchemaError, StoreError, TransportError
from ..messaging.envelope import ENC_BYTES, PREFIX, TAG_BYTES
from ..messaging.message import attachment_field
from ..messaging.padding import BUCKETS, MAX_BUCKET, MAX_CONTENT, MESSAGE_MAX_BUCKET
from ..timefmt import format_time, now
from .store import open_body, open_bytes, seal_body, seal_bytes

INLINE_MAX = 80 * 1024  # bytes: a larger file goes in chunks
FILE_MAX = 10 * 1024 * 1024  # bytes: a larger file is refused before anything is sent
MAX_CHUNKS = 65536
CHUNK_WINDOW = 8  # chunks in flight at once while sending (each up to 512 KiB)
MAX_OPEN_TRANSFERS = 16  # incomplete incoming transfers kept per peer; chunks of more are dropped
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")
_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}\Z")
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\Z")
NAME_MAX = 255  # characters of a file name on the wire


class FileRefused(KezError):
    """A file that cannot be sent (too large, unreadable, no route can carry a chunk)."""

    exit_code = ExitCode.BAD_INPUT
    code = "file_refused"


# ------------------------------------------------------------------ sizes


def envelope_text_length(bucket: int) -> int:
    """Characters of the text form of an envelope holding a `bucket`-byte padded message."""
    raw = ENC_BYTES + bucket + TAG_BYTES
    return len(PREFIX) + (4 * raw + 2) // 3  # base64url without padding


def largest_bucket(max_envelope: int) -> int:
    """The largest padding bucket whose envelope a transport with `max_envelope` carries."""
    fits = [b for b in BUCKETS if envelope_text_length(b) <= max_envelope]
    if not fits:
        raise FileRefused(
            f"a transport carrying at most {max_envelope} characters cannot carry any message"
        )
    return max(fits)


def chunk_size(bucket: int, overhead: int) -> int:
    """Raw bytes per chunk: the message's JSON (`overhead` bytes, its largest attachment field
    included), the `\n` separator and the bytes themselves fill at most `bucket` less the
    padding marker byte (docs/spec.md §12, "Attachments")."""
    size = bucket - 1 - overhead - 1
    if size <= 0:
        raise FileRefused(f"a {bucket}-byte message has no room for file data")
    return size


def legacy_chunk_size(bucket: int, overhead: int) -> int:
    """Raw bytes per chunk of the earlier form (base64 `data` inside the JSON), still read."""
    size = (bucket - 1 - overhead) // 4 * 3
    if size <= 0:
        raise FileRefused(f"a {bucket}-byte message has no room for file data")
    return size


# ------------------------------------------------------------------ bodies


@attrs.frozen
class FileMeta:
    name: str
    size: int
    sha256: str
    mime: str | None = None


@attrs.frozen
class Pointer:
    meta: FileMeta
    transfer: str
    count: int
    chunk_size: int


@attrs.frozen
class Chunk:
    transfer: str
    index: int
    count: int
    data: bytes | memoryview  # a sender slices the file without copying; a receiver holds bytes


def _meta_fields(meta: FileMeta) -> dict[str, Any]:
    out: dict[str, Any] = {"name": meta.name, "size": meta.size, "sha256": meta.sha256}
    if meta.mime:
        out["mime"] = meta.mime
    return out


def inline_body(meta: FileMeta, data: bytes) -> dict[str, Any]:
    return {"kind": "file", **_meta_fields(meta), "data": base64.b64encode(data).decode("ascii")}


def pointer_body(pointer: Pointer) -> dict[str, Any]:
    transfer = {"id": pointer.transfer, "count": pointer.count, "chunk_size": pointer.chunk_size}
    return {"kind": "file", **_meta_fields(pointer.meta), "transfer": transfer}


def chunk_body(chunk: Chunk) -> dict[str, Any]:
    """The signed body of a chunk; its bytes travel as the message's attachment (sealed with
    `attachment=chunk.data`), described here by size and SHA-256."""
    return {**chunk_fields(chunk), "attachment": attachment_field(chunk.data)}


def chunk_fields(chunk: Chunk) -> dict[str, Any]:
    """A chunk's body without its attachment field, which `seal_for_devices` adds as it seals
    the bytes (hashing them once, not once here and again there)."""
    return {
        "kind": "file_chunk",
        "transfer": chunk.transfer,
        "index": chunk.index,
        "count": chunk.count,
    }


def legacy_chunk_body(chunk: Chunk) -> dict[str, Any]:
    """A chunk of the earlier form, its bytes in standard base64 in the body (still read)."""
    return {
        "kind": "file_chunk",
        "transfer": chunk.transfer,
        "index": chunk.index,
        "count": chunk.count,
        "data": base64.b64encode(chunk.data).decode("ascii"),
    }


def _int(value: object, field: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise SchemaError(f"a file message's {field} must be an integer from {low} to {high}")
    return value


def _data(value: object, limit: int) -> bytes:
    if (
        not isinstance(value, str)
        or len(value) > (limit + 2) // 3 * 4
        or not _B64.match(value)
        or len(value) % 4
    ):
        raise SchemaError("a file message's data must be standard base64")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SchemaError("a file message's data must be standard base64") from None
    if base64.b64encode(data).decode("ascii") != value:
        raise SchemaError("a file message's data is not canonical base64")
    return data


def _meta(body: dict[str, Any]) -> FileMeta:
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX:
        raise SchemaError(f"a file message's name must be 1-{NAME_MAX} characters")
    sha = body.get("sha256")
    if not isinstance(sha, str) or not _HEX64.match(sha):
        raise SchemaError("a file message's sha256 must be 64 lowercase hex")
    mime = body.get("mime")
    if mime is not None and (not isinstance(mime, str) or not _MIME.match(mime)):
        raise SchemaError("a file message's mime must be a media type such as image/png")
    return FileMeta(name, _int(body.get("size"), "size", 0, FILE_MAX), sha, mime)


def parse_file(body: dict[str, Any]) -> tuple[FileMeta, bytes] | Pointer:
    """An inline file (its meta and bytes) or a pointer, from a `kind: "file"` body; SchemaError else."""
    if not isinstance(body, dict) or body.get("kind") != "file":
        raise SchemaError('a file message has body.kind "file"')
    meta = _meta(body)
    if "transfer" in body:
        t = body["transfer"]
        if not isinstance(t, dict) or not isinstance(t.get("id"), str) or not _HEX64.match(t["id"]):
            raise SchemaError("a file pointer's transfer.id must be 64 lowercase hex")
        count = _int(t.get("count"), "transfer.count", 1, MAX_CHUNKS)
        size = _int(t.get("chunk_size"), "transfer.chunk_size", 1, MAX_BUCKET)
        if not (count - 1) * size < max(meta.size, 1) <= count * size:
            raise SchemaError("a file pointer's count and chunk_size do not cover its size")
        return Pointer(meta, t["id"], count, size)
    data = _data(body.get("data"), INLINE_MAX)
    if len(data) != meta.size:
        raise SchemaError("an inline file's data is not as long as its size")
    return meta, data


def parse_chunk(body: dict[str, Any], attachment: bytes | None = None) -> Chunk:
    """A chunk from a `kind: "file_chunk"` body and the message's attachment (the checked bytes
    its `attachment` field describes), or from a body of the earlier form with base64 `data`;
    SchemaError for anything else."""
    if not isinstance(body, dict) or body.get("kind") != "file_chunk":
        raise SchemaError('a file chunk has body.kind "file_chunk"')
    transfer = body.get("transfer")
    if not isinstance(transfer, str) or not _HEX64.match(transfer):
        raise SchemaError("a file chunk's transfer must be 64 lowercase hex")
    count = _int(body.get("count"), "count", 1, MAX_CHUNKS)
    index = _int(body.get("index"), "index", 0, count - 1)
    if "attachment" in body:
        if "data" in body or attachment is None:
            raise SchemaError(
                "a file chunk carries its bytes as an attachment or as data, not both or neither"
            )
        field = body["attachment"]
        if not isinstance(field, dict) or field.get("size") != len(attachment):
            raise SchemaError("a file chunk's attachment is not the one its body describes")
        data = attachment
    else:
        data = _data(body.get("data"), 128 * 1024)
    if not data:
        raise SchemaError("a file chunk holds at least one byte")
    return Chunk(transfer, index, count, data)


# ------------------------------------------------------------------ saving


def safe_name(name: str) -> str:
    """A file name that stays in its folder and shows plainly: the last path part, controls,
    format characters and separators replaced by `_`, no leading dots, at most 120 characters."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").split("/")[-1]
    name = "".join(
        "_" if unicodedata.category(c)[0] in "CZ" and c != " " else c for c in name
    ).strip(" ")
    name = name.lstrip(".")
    if len(name) > 120:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 120 - len(ext) - 1] + "." + ext) if dot and len(ext) <= 16 else name[:120]
    return name or "file"


def save_file(folder: Path, name: str, data: bytes) -> Path:
    """Write `data` under a fresh name in `folder` (`name`, then `stem (1).ext`, …): written to a
    temporary file, then linked to a name that did not exist, so nothing is ever overwritten
    and a crash leaves no half file under the final name."""
    saved = save_checked(folder, name, [data], None)
    assert saved is not None
    return saved


def save_checked(
    folder: Path, name: str, pieces: Iterable[bytes], expect: tuple[int, str] | None
) -> Path | None:
    """`save_file` for bytes that come in pieces, checked on the way: with `expect` = (size,
    SHA-256 hex), a file whose bytes differ is not saved (None) and its temporary file goes."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = folder / f".kez-part-{secrets.token_hex(8)}"
        digest, size = hashlib.sha256(), 0
        with open(tmp, "xb") as out:
            for piece in pieces:
                out.write(piece)
                if expect is not None:
                    digest.update(piece)
                    size += len(piece)
            out.flush()
            if expect is not None and (size, digest.hexdigest()) != expect:
                tmp.unlink(missing_ok=True)
                return None
            os.fsync(out.fileno())
        try:
            base = safe_name(name)
            stem, dot, ext = base.rpartition(".")
            if not stem:
                stem, dot, ext = base, "", ""
            for n in range(10000):
                target = folder / (base if n == 0 else f"{stem} ({n}){dot}{ext}")
                try:
                    os.link(tmp, target)
                    return target
                except FileExistsError:
                    continue
            raise StoreError(f"no free name for {base!r} in {folder}")
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot save a received file in {folder}: {exc}") from exc


# ------------------------------------------------------------------ the store's file tables


def _ad(peer: str, transfer: str, direction: str) -> str:
    return f"transfer:{direction}:{peer}:{transfer}"


class Transfers:
    """The file tables of a ChatStore (schema version 2): transfers, received chunks, sent chunks."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def get(self, peer: str, transfer: str, direction: str) -> dict[str, Any] | None:
        rows = self.store._read(
            "SELECT key, state, meta FROM transfers WHERE peer = ? AND id = ? AND direction = ?",
            (peer, transfer, direction),
        )
        if not rows:
            return None
        key, state, meta = rows[0]
        return {
            "key": key,
            "state": state,
            **open_body(self.store._key, _ad(peer, transfer, direction), meta),
        }

    def put(
        self,
        peer: str,
        transfer: str,
        direction: str,
        key: str | None,
        state: str,
        meta: dict[str, Any],
    ) -> None:
        blob = seal_body(self.store._key, _ad(peer, transfer, direction), meta)
        with self.store._write() as db:
            db.execute(
                "INSERT INTO transfers VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (peer, id, direction)"
                " DO UPDATE SET key = excluded.key, state = excluded.state, meta = excluded.meta,"
                " updated_at = excluded.updated_at",
                (peer, transfer, direction, key, state, blob, format_time(now())),
            )

    def unfinished_out(self, peer: str, size: int) -> list[tuple[str, dict[str, Any]]]:
        """The unfinished outgoing transfers to `peer` of a file of `size` bytes, with their
        records (`sha256` tells which one, if any, is the same file: only when there is a
        candidate does the sender wait for its file's SHA-256 before the chunks go out)."""
        rows = self.store._read(
            "SELECT id FROM transfers WHERE peer = ? AND direction = 'out' AND state = 'sending'",
            (peer,),
        )
        found = []
        for (transfer,) in rows:
            record = self.get(peer, transfer, "out")
            if record and record["size"] == size:
                found.append((transfer, record))
        return found

    def sent_chunks(self, transfer: str) -> set[int]:
        return {
            r[0]
            for r in self.store._read("SELECT idx FROM out_chunks WHERE transfer = ?", (transfer,))
        }

    def mark_sent(self, transfer: str, index: int) -> None:
        with self.store._write() as db:
            db.execute("INSERT OR IGNORE INTO out_chunks VALUES (?, ?)", (transfer, index))

    def open_transfers(self, peer: str) -> int:
        rows = self.store._read(
            "SELECT count(DISTINCT c.transfer) FROM in_chunks c LEFT JOIN transfers t ON t.peer = c.peer"
            " AND t.id = c.transfer AND t.direction = 'in' WHERE c.peer = ? AND (t.state IS NULL OR"
            " t.state = 'receiving')",
            (peer,),
        )
        return int(rows[0][0])

    def spool_path(self, peer: str, transfer: str) -> Path:
        """The file holding a received transfer's chunks (sealed), beside the store."""
        name = hashlib.sha256(f"{peer}\n{transfer}".encode()).hexdigest()
        folder: Path = self.store.path.parent
        return folder / SPOOL_DIR / f"{name}.spool"

    def add_chunk(self, peer: str, chunk: Chunk) -> bool:
        """Keep a chunk (False when that index is here already). Its bytes, sealed, are appended
        to the transfer's spool file and its row names the offset; the file is fsynced before the
        transaction holding the row commits (`ChatStore.on_commit`), so a committed row always
        names bytes on disk, and a crash before the commit leaves only unnamed bytes at the end.
        Appends happen inside the write transaction, which one process at a time holds."""
        blob = seal_bytes(
            self.store._key, f"{_ad(peer, chunk.transfer, 'in')}:{chunk.index}", chunk.data
        )
        path = self.spool_path(peer, chunk.transfer)
        with self.store._write() as db:
            if db.execute(
                "SELECT 1 FROM in_chunks WHERE peer = ? AND transfer = ? AND idx = ?",
                (peer, chunk.transfer, chunk.index),
            ).fetchone():
                return False
            at = _append(path, len(blob).to_bytes(4, "big") + blob)
            self.store.on_commit(f"fsync:{path}", before=lambda: _fsync(path))
            if at == 0:  # a new file: its directory entry must last too
                self.store.on_commit(f"fsync:{path.parent}", before=lambda: _fsync(path.parent))
            db.execute(
                "INSERT INTO in_chunks VALUES (?, ?, ?, ?, ?)",
                (peer, chunk.transfer, chunk.index, b"", at),
            )
            return True

    def received(self, peer: str, transfer: str, count: int) -> int:
        rows = self.store._read(
            "SELECT count(*) FROM in_chunks WHERE peer = ? AND transfer = ? AND idx < ?",
            (peer, transfer, count),
        )
        return int(rows[0][0])

    def pieces(self, peer: str, transfer: str, count: int) -> Iterator[bytes]:
        """The transfer's chunks in index order, opened (a damaged one is empty: the SHA-256
        check then fails and the file is `corrupt`)."""
        rows = self.store._read(
            "SELECT idx, data, at FROM in_chunks WHERE peer = ? AND transfer = ? AND idx < ? ORDER BY idx",
            (peer, transfer, count),
        )
        ad = _ad(peer, transfer, "in")
        spool = None
        try:
            for idx, blob, at in rows:
                if at is not None:
                    if spool is None:
                        spool = open(self.spool_path(peer, transfer), "rb")  # noqa: SIM115 (closed below)
                    blob = _read_record(spool, at)
                yield _open_bytes(self.store._key, f"{ad}:{idx}", blob)
        except OSError:
            yield b""
        finally:
            if spool is not None:
                spool.close()

    def assemble(self, peer: str, transfer: str, count: int) -> bytes:
        return b"".join(self.pieces(peer, transfer, count))

    def drop_chunks(self, peer: str, transfer: str) -> None:
        """Forget a transfer's chunks; its spool file goes once that has committed (renamed
        away at once, removed by a background thread: freeing a 10 MiB file takes a few
        milliseconds the sender would otherwise wait for its ack)."""
        path = self.spool_path(peer, transfer)
        with self.store._write() as db:
            db.execute("DELETE FROM in_chunks WHERE peer = ? AND transfer = ?", (peer, transfer))
            self.store.on_commit(f"unlink:{path}", after=lambda: _remove_soon(path))

    def queue_ack(self, peer: str, message_id: str) -> None:
        with self.store._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO pending_acks VALUES (?, ?, ?)",
                (peer, message_id, format_time(now())),
            )

    def set_body(self, key: str, body: dict[str, Any]) -> None:
        with self.store._write() as db:
            db.execute(
                "UPDATE messages SET body = ? WHERE key = ?",
                (seal_body(self.store._key, key, body), key),
            )


SPOOL_DIR = "transfers"  # beside chat.db: one spool file per incoming transfer


def _append(path: Path, record: bytes) -> int:
    """Write `record` at the end of `path` (created 0600, folder 0700); the offset it went to."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        at = os.fstat(fd).st_size
        done = 0
        while done < len(record):
            done += os.pwrite(fd, record[done:] if done else record, at + done)
        return at
    finally:
        os.close(fd)


GONE = ".gone"  # a spool file no row names any more, waiting for the background removal


def _remove_soon(path: Path) -> None:
    """Rename `path` out of the way now and remove it (and any earlier leftovers a process
    that ended meanwhile left) in a background thread."""
    try:
        path.rename(path.with_name(path.name + GONE))
    except FileNotFoundError:
        return
    except OSError:
        path.unlink(missing_ok=True)
        return
    threading.Thread(target=_remove_gone, args=(path.parent,), daemon=True).start()


def _remove_gone(folder: Path) -> None:
    try:
        for gone in folder.glob(f"*{GONE}"):
            gone.unlink(missing_ok=True)
    except OSError:
        pass  # a leftover goes with the next transfer's cleanup


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_record(spool: Any, at: int) -> bytes:
    spool.seek(at)
    size = int.from_bytes(spool.read(4), "big")
    return bytes(spool.read(size))


def _open_bytes(key: bytes, ad: str, blob: bytes) -> bytes:
    from cryptography.exceptions import InvalidTag

    try:
        return open_bytes(key, ad, blob)
    except (InvalidTag, ValueError):
        return b""  # a damaged chunk: the SHA-256 check then fails and the file is `corrupt`


# ------------------------------------------------------------------ sending


Progress = Callable[[int, int], None]


def read_unhashed(path: str | Path) -> tuple[str, str | None, bytes]:
    """(name on the wire, media type, bytes) of a file to send, not hashed yet (a large
    file's SHA-256 is computed while its first chunks go out); FileRefused as
    `check_sendable`, or when the file grew past FILE_MAX meanwhile."""
    import mimetypes

    path = check_sendable(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileRefused(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > FILE_MAX:
        raise FileRefused(f"{path.name} grew past {FILE_MAX:,} bytes while being read")
    mime = mimetypes.guess_type(path.name)[0]
    if mime is not None and not _MIME.match(mime):
        mime = None
    return path.name[:NAME_MAX] or "file", mime, data


def check_sendable(path: str | Path) -> Path:
    """The path, when it names a readable file of at most FILE_MAX bytes; FileRefused (exit 3)
    otherwise. Nothing is read: a command refuses a file before it connects anywhere."""
    path = Path(path).expanduser()
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise FileRefused(f"{path} is not a file")
        if size > FILE_MAX:
            raise FileRefused(
                f"{path.name} is {size:,} bytes; a file sent by message is at most {FILE_MAX:,} bytes (10 MiB)",
                hint="share larger files another way and send the link",
            )
        with path.open("rb"):
            pass
    except OSError as exc:
        raise FileRefused(f"cannot read {path}: {exc.strerror or exc}") from exc
    return path


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def route_bucket(routes: Sequence[Any]) -> int:
    """The largest bucket every route carries (a chunk goes through all of them)."""
    from ..messaging.envelope import MAX_ENVELOPE_TEXT

    return min(
        largest_bucket(int(getattr(r.transport, "max_envelope", MAX_ENVELOPE_TEXT))) for r in routes
    )


def _message_size(service: Any, peer: Any, body: dict[str, Any]) -> int:
    """Bytes of the signed message carrying `body` to the peer (measured on a real one)."""
    from ..messaging import create_message

    inbox = peer.chain.current_inbox_keys(service.clock())
    key = inbox[0].key if inbox else "x25519:" + "0" * 64
    obj = create_message(
        service.signer(),
        sender_identity=service.identity,
        recipient=peer.identity,
        inbox_key=key,
        body=body,
        registry=service.keystore.registry,
    )
    return len(obj.canonical())


def _stored(meta: FileMeta, state: str, path: str | None, **more: Any) -> dict[str, Any]:
    return {"kind": "file", "file": {**_meta_fields(meta), "state": state, "path": path, **more}}


async def send_file(
    service: Any,
    peer: Any,
    path: str | Path,
    routes: Sequence[Any],
    progress: Progress | None = None,
) -> Any:
    """Send a file (see the module docstring); a SendResult for the message a person sees.

    Re-sending the same file to the same peer while an earlier transfer of it is unfinished
    resumes that transfer: only chunks not sent yet go out, then the pointer. A new chunked
    transfer's first chunks go out while the file's SHA-256 (which only the pointer and the
    stored record need) is computed in a worker thread."""
    if not routes:
        raise TransportError(
            "no transport to send through", hint="pick one with --via (see `kez plugins`)"
        )
    name, mime, data = read_unhashed(path)
    source = str(Path(path).expanduser().resolve())
    bucket = route_bucket(routes)
    if len(data) <= INLINE_MAX:
        meta = FileMeta(name, len(data), _sha256_hex(data), mime)
        body = inline_body(meta, data)
        if _message_size(service, peer, body) <= min(bucket, MESSAGE_MAX_BUCKET) - 1:
            result = await service.send_body(
                peer, body, routes, stored=_stored(meta, "complete", source)
            )
            if progress:
                progress(1, 1)
            return result
    hashing = asyncio.ensure_future(asyncio.to_thread(_sha256_hex, data))
    sending: asyncio.Future[tuple[Any, ...] | None] | None = None
    try:
        transfers = Transfers(service.store)
        candidates = transfers.unfinished_out(peer.identity, len(data))
        sha256 = await hashing if candidates else None
        found = next(((t, r) for t, r in candidates if r["sha256"] == sha256), None)
        if found is not None:
            transfer, record = found
            plan, key = Plan(transfer, record["count"], record["chunk_size"]), record["key"]
            done = transfers.sent_chunks(transfer)
        else:
            plan, key, done = _plan(service, peer, name, len(data), bucket), None, set()
        if progress:
            progress(len(done), plan.count + 1)
        sending = asyncio.ensure_future(
            _send_chunks(service, peer, plan, data, routes, transfers, done, progress)
        )
        meta = FileMeta(name, len(data), await hashing, mime)
        sealed_pointer = service._seal(peer.chain, pointer_body(plan.pointer(meta)))
        if key is None:
            key = sealed_pointer[0][1].id
            with service.store.batch():  # one commit (one fsync), while the chunks go out
                transfers.put(
                    peer.identity,
                    plan.transfer,
                    "out",
                    key,
                    "sending",
                    {
                        **_meta_fields(meta),
                        "count": plan.count,
                        "chunk_size": plan.chunk_size,
                        "source": source,
                    },
                )
                service.store.add_outgoing(
                    key,
                    peer.identity,
                    sealed_pointer[0][1].payload["created_at"],
                    _stored(meta, "sending", source, transfer=plan.transfer, count=plan.count),
                )
    except BaseException:
        hashing.cancel()
        if sending is not None:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
        raise
    failed = await sending
    return await _send_pointer(
        service, peer, plan, meta, key, sealed_pointer, source, routes, failed, progress
    )


@attrs.frozen
class Plan:
    """How a file is cut: its transfer id, the number of chunks and their size."""

    transfer: str
    count: int
    chunk_size: int

    def pointer(self, meta: FileMeta) -> Pointer:
        return Pointer(meta, self.transfer, self.count, self.chunk_size)


def _plan(service: Any, peer: Any, name: str, size: int, bucket: int) -> Plan:
    """A new transfer's cut: chunks as large as the smallest route's envelope allows."""
    transfer = secrets.token_hex(32)
    template = {
        **chunk_body(Chunk(transfer, MAX_CHUNKS - 1, MAX_CHUNKS, b"")),
        "attachment": {"size": MAX_CONTENT, "sha256": "0" * 64},
    }  # the widest field
    piece = chunk_size(bucket, _message_size(service, peer, template))
    count = max(1, -(-size // piece))
    if count > MAX_CHUNKS:
        raise FileRefused(
            f"{name} would need {count} chunks on this transport (at most {MAX_CHUNKS})"
        )
    return Plan(transfer, count, piece)


async def _send_pointer(
    service: Any,
    peer: Any,
    plan: Plan,
    meta: FileMeta,
    key: str,
    sealed_pointer: list[tuple[str, Any, str]],
    source: str,
    routes: Sequence[Any],
    failed: tuple[Any, ...] | None,
    progress: Progress | None,
) -> Any:
    """Once every chunk went out, the pointer (the message a person sees), then the stored
    states; a SendResult."""
    from .service import SendResult

    if failed is not None:
        return SendResult(key, peer.identity, "sending", failed)
    transfers = Transfers(service.store)
    transfer = plan.transfer
    service.store.add_sent_ids(key, [obj.id for _, obj, _ in sealed_pointer])
    deliveries = await service._deliver(peer.identity, sealed_pointer, routes, peer.chain)
    state = "sending"
    if any(d.sent for d in deliveries):
        record = transfers.get(peer.identity, transfer, "out") or {}
        transfers.put(
            peer.identity,
            transfer,
            "out",
            key,
            "sent",
            {k: v for k, v in record.items() if k not in ("key", "state")},
        )
        transfers.set_body(
            key, _stored(meta, "complete", source, transfer=transfer, count=plan.count)
        )
        service.store.set_state(key, "sent", only_from=("sending",))
        state = service._state_of(peer.identity, key)
        if progress:
            progress(plan.count + 1, plan.count + 1)
        pointer_ids = [obj.id for _, obj, _ in sealed_pointer]
        copies = await service.copy_to_devices(
            peer.identity,
            key,
            sealed_pointer[0][1].payload["created_at"],
            list(dict.fromkeys([key, *pointer_ids])),
            _stored(meta, "complete", source, transfer=transfer, count=plan.count),
            routes,
        )
        return SendResult(key, peer.identity, state, tuple(deliveries), copies)
    return SendResult(key, peer.identity, state, tuple(deliveries))


async def _send_chunks(
    service: Any,
    peer: Any,
    plan: Plan,
    data: bytes,
    routes: Sequence[Any],
    transfers: Transfers,
    done: set[int],
    progress: Progress | None,
    window: int = CHUNK_WINDOW,
) -> tuple[Any, ...] | None:
    """Send the chunks not in `done`, up to `window` in flight: each chunk's delivery starts as
    soon as it is sealed (so the transport works while the next one is sealed), and the sent
    marks go to the store `window` at a time in one transaction (one fsync, not one per chunk).
    The deliveries of a chunk no route took, else None. A chunk is marked sent only once a
    transport accepted it, so a resumed transfer sends exactly the ones missing (a crash between
    a send and its mark sends that chunk again; the receiver keeps one copy)."""
    size = plan.chunk_size
    view = memoryview(data)
    flying: dict[asyncio.Future[Any], int] = {}
    marks: list[int] = []
    failed: tuple[Any, ...] | None = None

    def record() -> None:
        if marks:
            with service.store.batch():
                for index in marks:
                    transfers.mark_sent(plan.transfer, index)
            done.update(marks)
            marks.clear()
            if progress:
                progress(len(done), plan.count + 1)

    async def settle(block: bool) -> None:
        nonlocal failed
        if not flying:
            return
        finished, _ = await asyncio.wait(
            flying, return_when=asyncio.FIRST_COMPLETED if block else asyncio.ALL_COMPLETED
        )
        for task in finished:
            index = flying.pop(task)
            deliveries = task.result()
            if any(d.sent for d in deliveries):
                marks.append(index)
            elif failed is None:
                failed = tuple(deliveries)
        if len(marks) >= window:
            record()

    try:
        for index in (i for i in range(plan.count) if i not in done):
            if failed is not None:
                break
            piece = view[index * size : (index + 1) * size]  # no copy: hashed, then sealed
            sealed = service._seal(
                peer.chain,
                chunk_fields(Chunk(plan.transfer, index, plan.count, piece)),
                attachment=piece,
            )
            flying[
                asyncio.ensure_future(service._deliver(peer.identity, sealed, routes, peer.chain))
            ] = index
            await asyncio.sleep(0)  # its publish starts now, while the next chunk is sealed
            while len(flying) >= window:
                await settle(True)
        while flying:
            await settle(False)
    finally:
        for task in flying:
            task.cancel()
        record()
    return failed


# ------------------------------------------------------------------ receiving


def files_dir(service: Any) -> Path:
    return (
        Path(service.save_dir) if getattr(service, "save_dir", None) else service.folder / "files"
    )


def receive_file(service: Any, message: Any, checked: bool, stranger: bool) -> Any:
    """A `kind: "file"` message: an inline file saved now, or a pointer (saved once complete)."""
    from .service import Received

    sender = message.sender_identity
    parsed = parse_file(dict(message.body))
    created = str(message.signed.payload["created_at"])
    if isinstance(parsed, tuple):
        meta, data = parsed
        ok = hashlib.sha256(data).hexdigest() == meta.sha256
        path = str(save_file(files_dir(service), meta.name, data)) if ok else None
        body = _stored(meta, "complete" if ok else "corrupt", path)
        service.store.add_incoming(message.id, sender, created, body, stranger=stranger, ack=ok)
        return Received("message", message, checked, stranger=stranger, file=body["file"])
    pointer = parsed
    transfers = Transfers(service.store)
    known = transfers.get(sender, pointer.transfer, "in")
    if (
        known is not None
    ):  # the pointer again, sealed afresh by a resumed sender: one entry, no new ack
        known["transfer"] = pointer.transfer
        return Received(
            "file_chunk",
            message,
            checked,
            stranger=stranger,
            file=file_state(transfers, sender, known),
        )
    body = _stored(
        pointer.meta, "receiving", None, transfer=pointer.transfer, count=pointer.count, received=0
    )
    if not service.store.add_incoming(
        message.id, sender, created, body, stranger=stranger, ack=False
    ):
        return Received("message", message, checked, stranger=stranger, file=body["file"])
    if transfers.get(sender, pointer.transfer, "in") is None:
        transfers.put(
            sender,
            pointer.transfer,
            "in",
            message.id,
            "receiving",
            {
                **_meta_fields(pointer.meta),
                "count": pointer.count,
                "chunk_size": pointer.chunk_size,
            },
        )
    state = _finish(service, transfers, sender, pointer.transfer)
    return Received("message", message, checked, stranger=stranger, file=state)


def receive_chunk(service: Any, message: Any, checked: bool, stranger: bool) -> Any:
    """A `kind: "file_chunk"` message: kept (encrypted), and the file finished when it was the last."""
    from .service import Received

    sender = message.sender_identity
    chunk = parse_chunk(dict(message.body), getattr(message, "attachment", None))
    transfers = Transfers(service.store)
    record = transfers.get(sender, chunk.transfer, "in")
    if record is not None and record["state"] != "receiving":
        return Received(
            "file_chunk",
            message,
            checked,
            stranger=stranger,
            file=file_state(transfers, sender, record),
        )
    if record is None and transfers.received(sender, chunk.transfer, MAX_CHUNKS) == 0:
        if transfers.open_transfers(sender) >= MAX_OPEN_TRANSFERS:
            return Received("dropped", message, checked, stranger=stranger)
    if chunk.count * len(chunk.data) > FILE_MAX + MAX_BUCKET and chunk.index < chunk.count - 1:
        return Received("dropped", message, checked, stranger=stranger)
    if transfers.add_chunk(sender, chunk):
        service.held_chunks.add(sender, chunk.transfer, chunk.index, chunk.count, bytes(chunk.data))
    state = (
        _finish(service, transfers, sender, chunk.transfer)
        if record is not None
        else {
            "state": "receiving",
            "received": transfers.received(sender, chunk.transfer, chunk.count),
            "count": chunk.count,
        }
    )
    return Received("file_chunk", message, checked, stranger=stranger, file=state)


def file_state(transfers: Transfers, peer: str, record: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {k: record[k] for k in ("name", "size", "sha256") if k in record}
    return {
        **meta,
        "state": record["state"],
        "path": record.get("path"),
        "received": transfers.received(peer, record["transfer"], record["count"])
        if record["state"] == "receiving"
        else record["count"],
        "count": record["count"],
        "transfer": record["transfer"],
    }


def _finish(service: Any, transfers: Transfers, peer: str, transfer: str) -> dict[str, Any]:
    """Assemble, check and save the transfer when every chunk is here; its state either way."""
    record = transfers.get(peer, transfer, "in")
    assert record is not None
    record["transfer"] = transfer
    count = record["count"]
    got = transfers.received(peer, transfer, count)
    meta = FileMeta(record["name"], record["size"], record["sha256"], record.get("mime"))
    stored = {k: v for k, v in record.items() if k not in ("key", "state")}
    if record["state"] == "receiving" and got >= count:
        held = service.held_chunks.take(peer, transfer, count)
        if held is not None and held[1:] == (meta.size, meta.sha256):
            # every chunk came through this process: its bytes and digest are at hand
            saved = save_checked(files_dir(service), meta.name, held[0], None)
        else:
            saved = save_checked(
                files_dir(service),
                meta.name,
                transfers.pieces(peer, transfer, count),
                (meta.size, meta.sha256),
            )
        path = str(saved) if saved is not None else None
        state = "complete" if saved is not None else "corrupt"
        transfers.put(peer, transfer, "in", record["key"], state, {**stored, "path": path})
        transfers.drop_chunks(peer, transfer)
        service.held_chunks.forget(peer, transfer)
        transfers.set_body(
            record["key"], _stored(meta, state, path, transfer=transfer, count=count)
        )
        if saved is not None:
            transfers.queue_ack(peer, record["key"])
        record = {**record, "state": state, "path": path}
    return file_state(transfers, peer, record)


def annotate(service: Any, entries: list[Any]) -> list[Any]:
    """History entries with each incoming file's current progress (`received` of `count`)."""
    transfers = Transfers(service.store)
    out = []
    for entry in entries:
        f = entry.body.get("file") if entry.body.get("kind") == "file" else None
        if isinstance(f, dict) and f.get("state") == "receiving" and entry.direction == "in":
            f = {
                **f,
                "received": transfers.received(
                    entry.peer, f.get("transfer", ""), int(f.get("count") or 0)
                ),
            }
            entry = attrs.evolve(entry, body={**entry.body, "file": f})
        out.append(entry)
    return out


def describe(file: dict[str, Any]) -> str:
    """One line about a file's state, for people."""
    name, state = json.dumps(str(file.get("name", "file")), ensure_ascii=False), file.get("state")
    if state == "receiving":
        return f"file {name}: receiving {file.get('received', 0)}/{file.get('count', '?')}…"
    if state == "complete" and file.get("path"):
        return f"file {name} ({file.get('size', '?')} bytes) saved to {file['path']}"
    if state == "corrupt":
        return f"file {name}: corrupt (its SHA-256 did not match), not saved"
    return f"file {name} ({file.get('size', '?')} bytes) {state}"
