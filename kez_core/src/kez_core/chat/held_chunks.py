"""Chunks this process received, kept in memory until their file is assembled (issue 12 §9).

A received chunk goes to its transfer's spool file, sealed, and that stays
the record: a transfer resumes from it after a restart, and a process that
did not see every chunk assembles from it. Reading the spool back at the
end costs a read, a decryption and a SHA-256 pass over the whole file, all
after the last chunk arrived, while the sender waits for its ack. So the
process that received the chunks also keeps their plaintext here, bounded
(`HELD_MAX` bytes in all; a transfer that does not fit is not held, and is
assembled from its spool as before), and hashes each chunk into the file's
SHA-256 as soon as every chunk before it is here, while the network is
still delivering the rest. When the last piece arrives, the file's digest
is known and its bytes are at hand: assembling is writing them out.

Nothing here is trusted more than the spool: the bytes held are the checked
attachments (their SHA-256 was signed by the sender), and the file they
make is saved only when its size and SHA-256 are the ones the signed
pointer names; otherwise the spool is read as before (which decides
`corrupt`).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import attrs

HELD_MAX = (
    48 * 1024 * 1024
)  # bytes of chunk plaintext held in memory at most, every transfer together


@attrs.define
class _Held:
    count: int
    pieces: dict[int, bytes] = attrs.Factory(dict)
    digest: Any = attrs.Factory(hashlib.sha256)  # SHA-256 of pieces 0 .. hashed-1
    hashed: int = 0
    size: int = 0


@attrs.define
class HeldChunks:
    """Received chunk plaintext by (peer, transfer), for `files._finish` (see the module docstring)."""

    limit: int = HELD_MAX
    _held: dict[tuple[str, str], _Held] = attrs.Factory(dict)
    _spilled: set[tuple[str, str]] = attrs.Factory(set)  # transfers not held (too large at once)
    _total: int = 0
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    def add(self, peer: str, transfer: str, index: int, count: int, data: bytes) -> None:
        """Hold a chunk the store has just kept (the first copy of its index), and hash every
        piece that now follows the ones hashed."""
        key = (peer, transfer)
        with self._lock:
            if key in self._spilled:
                return
            held = self._held.get(key)
            if held is None:
                held = self._held[key] = _Held(count)
            if held.count != count or index in held.pieces or not 0 <= index < count:
                return
            if self._total + len(data) > self.limit:
                self._spill(key)
                return
            held.pieces[index] = data
            held.size += len(data)
            self._total += len(data)
            while held.hashed in held.pieces:
                held.digest.update(held.pieces[held.hashed])
                held.hashed += 1

    def take(self, peer: str, transfer: str, count: int) -> tuple[list[bytes], int, str] | None:
        """(pieces in order, their size, their SHA-256 hex) when every one of `count` pieces is
        held, and forget them; None (forgetting nothing) when some are not."""
        key = (peer, transfer)
        with self._lock:
            held = self._held.get(key)
            if held is None or held.count != count or held.hashed != count:
                return None
            del self._held[key]
            self._total -= held.size
            pieces = [held.pieces[i] for i in range(count)]
            return pieces, held.size, held.digest.hexdigest()

    def forget(self, peer: str, transfer: str) -> None:
        """Drop what is held of a transfer (it was assembled from its spool, or dropped)."""
        with self._lock:
            self._spilled.discard((peer, transfer))
            self._drop((peer, transfer))

    @property
    def total(self) -> int:
        """Bytes held now."""
        return self._total

    def _spill(self, key: tuple[str, str]) -> None:
        self._drop(key)
        self._spilled.add(key)

    def _drop(self, key: tuple[str, str]) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            self._total -= held.size
