"""The sigchain store: validated appends, fork evidence, reads.

The server holds copies, not truth: a link authenticates itself, so there
are no accounts. An append is accepted when every posted link validates
with `kez_core.sigchain.ChainValidator` exactly as a client validates it,
in its position after the stored links:

- a posted link byte-identical to the stored link at its seqno (the client
  re-pushing its whole chain, the usual case) is a no-op and costs one
  SHA-256, no signature check;
- a posted link with the stored link's id at that seqno but other bytes
  (another JSON spelling) is validated and then a no-op;
- a valid link after the stored head is stored (canonical bytes);
- a valid link whose id differs from the stored one at its seqno is a fork:
  it is kept as evidence (`GET …/forks`) and the append answers 409 with
  both ids. Nothing of that request is stored besides the evidence.

Concurrency: the plan is made from a snapshot of the stored ids, then the
new links are inserted in one transaction; the (identity, seqno) primary
key refuses the second of two writers extending the same head, and the
loser plans again on the new snapshot. Where its link now conflicts with
a link stored after it first planned, it lost a race, which is not a fork
to keep as evidence: 409 `chain_changed`, "fetch and retry" (typically two
devices of one identity appending at once).

To validate a link after the stored head the validator must hold the state
of the chain up to it. Rebuilding that state means re-verifying every
stored link, so the validator of each recently written chain is kept in a
small LRU cache keyed by identity and head id: the head id is the hash of
the whole chain, so a cached state is right exactly when the ids match
(also with several server processes writing one database).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Any

import attrs
from kez_core.codec import parse_json
from kez_core.errors import KezError
from kez_core.keys import parse_key_id
from kez_core.registry import Registry, default_registry
from kez_core.sigchain import ChainError, ChainFault, ChainState, ChainValidator
from kez_core.sigchain.parallel import PooledFeed
from kez_core.timefmt import format_time, now

from .db import Conflict, Store
from .errors import ApiError
from .quotas import ClientQuota, check_identity_quota

PAGE = 1000  # links per database read when serving a chain
RETRIES = 4  # plans per append when other writers keep winning the race


@attrs.frozen
class AppendResult:
    identity: str
    head_seqno: int
    head_id: str
    appended: int

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@lru_cache(maxsize=4096)
def is_identity_id(text: str, registry: Registry) -> bool:
    """`text` is a key id in normal form (`<alg>:<lowercase hex>`, not an npub): what names a chain."""
    try:
        key = parse_key_id(text, registry)
    except KezError:
        return False
    return str(key) == text and not text.startswith("npub")


def check_identity(alg: str, hexkey: str, registry: Registry | None = None) -> str:
    """`{alg}:{hex}` from the URL, in normal form; ApiError 400 otherwise."""
    identity = f"{alg}:{hexkey}"
    too_long = len(alg) > 32 or len(hexkey) > 160
    if too_long or not is_identity_id(identity, registry or default_registry()):
        raise ApiError(
            400,
            "bad_identity",
            f"{alg[:32]}:{hexkey[:80]} is not an identity id in normal form",
            hint="the URL is /v1/sigchains/<alg>/<lowercase hex>, e.g. /v1/sigchains/ed25519/<64 hex>",
        )
    return identity


def _peek_seqno(line: bytes) -> int | None:
    """payload.seqno of a posted line, if it reads as one (the validator judges the rest)."""
    try:
        data = parse_json(line)
        seqno = data["payload"]["seqno"]
    except (KezError, KeyError, TypeError):
        return None
    return seqno if type(seqno) is int and seqno >= 1 else None


def split_lines(body: bytes) -> list[tuple[int, bytes]]:
    """(line number in the body, line without its newline) for every non-blank line."""
    out = []
    for number, line in enumerate(body.split(b"\n"), 1):
        if line.strip():
            out.append((number, line[:-1] if line.endswith(b"\r") else line))
    return out


class ChainService:
    """Appends and reads over a `Store` (thread-safe; called from the thread pool)."""

    def __init__(
        self,
        store: Store,
        *,
        registry: Registry | None = None,
        cache_size: int = 1024,
        max_links: int = 0,
        max_bytes: int = 0,
        client_quota: ClientQuota | None = None,
    ):
        self.store = store
        self.registry = registry or default_registry()
        self.cache_size = cache_size
        self.max_links = max_links  # per identity (0: no quota); see quotas.py
        self.max_bytes = max_bytes
        self.client_quota = client_quota
        self._cache: OrderedDict[str, tuple[str, ChainValidator]] = OrderedDict()
        # identity -> (head id, stored bytes up to it), for the identity byte quota
        self._sizes: OrderedDict[str, tuple[str, int]] = OrderedDict()
        # identity -> (head id, (current primary, devices) there), for `known_keys`
        self._keys: OrderedDict[str, tuple[str, tuple[str, frozenset[str]]]] = OrderedDict()
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- cache

    def _take(self, identity: str, head_id: str) -> ChainValidator | None:
        with self._lock:
            entry = self._cache.pop(identity, None)
        if entry is not None and entry[0] == head_id:
            return entry[1]
        return None

    def _put(self, identity: str, head_id: str, validator: ChainValidator) -> None:
        with self._lock:
            self._cache[identity] = (head_id, validator)
            self._cache.move_to_end(identity)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _stored_bytes(self, identity: str, n: int, head_id: str | None) -> int:
        """Bytes of the stored chain up to head `n` (kept per head id; read once otherwise)."""
        if n == 0 or head_id is None:
            return 0
        with self._lock:
            entry = self._sizes.get(identity)
        if entry is not None and entry[0] == head_id:
            return entry[1]
        size = self.store.chain_bytes(identity, n)
        self._put_size(identity, head_id, size)
        return size

    def _put_size(self, identity: str, head_id: str, size: int) -> None:
        with self._lock:
            self._sizes[identity] = (head_id, size)
            self._sizes.move_to_end(identity)
            while len(self._sizes) > self.cache_size:
                self._sizes.popitem(last=False)

    def _charge(self, client: str, links: int, nbytes: int) -> None:
        if self.client_quota is not None:
            self.client_quota.charge(client, links, nbytes)

    def _refund(self, client: str, links: int, nbytes: int) -> None:
        if self.client_quota is not None:
            self.client_quota.refund(client, links, nbytes)

    def _validator_at(
        self, identity: str, upto: int, ids: dict[int, str], n: int
    ) -> ChainValidator:
        """A validator holding the state after stored link `upto` (a fresh one for 0)."""
        if upto == 0:
            return ChainValidator(registry=self.registry)
        cached = self._take(identity, ids[upto]) if upto == n else None
        if cached is not None:
            return cached
        validator = ChainValidator(registry=self.registry)
        after = 0
        while after < upto:
            rows = self.store.chain_lines(identity, after, min(PAGE, upto - after))
            if not rows:  # pragma: no cover - the ids said these rows exist
                raise ApiError(
                    503, "unavailable", "the stored chain changed while reading it; retry"
                )
            for seqno, line in rows:
                validator.feed_trusted(line)  # stored links passed `feed` when they were appended
                after = seqno
        return validator

    def current_primary(self, identity: str) -> str | None:
        """The current primary key of the stored chain of `identity` (None: no chain here)."""
        state = self.state(identity)
        return None if state is None else state.current_primary

    def state(self, identity: str) -> ChainState | None:
        """The validated state of the stored chain of `identity` (None: no chain here).

        Rebuilds the state from the stored links unless the cached validator
        is at the head, and leaves the validator in the cache for the next append.
        """
        head = self.store.head(identity)
        if head is None:
            return None
        n, head_id = head
        validator = self._validator_at(identity, n, {n: head_id}, n)
        state = validator.result()
        self._put(identity, head_id, validator)
        keys = (state.current_primary, frozenset(state.devices))  # a copy: the validator goes on
        with self._lock:
            self._keys[identity] = (head_id, keys)
            self._keys.move_to_end(identity)
            while len(self._keys) > self.cache_size:
                self._keys.popitem(last=False)
        return state

    def known_keys(self, identity: str) -> tuple[bool, tuple[str, frozenset[str]] | None]:
        """(True, (current primary, devices)) when known without reading the chain: no chain
        here gives (True, None), and so does nothing else; the keys `state()` last saw count
        while the stored head is still theirs. Else (False, None): call `state()`.

        One head read: cheap enough to run on the event loop (SQLite), where
        `state()` may rebuild a long chain and belongs in a thread.
        """
        head = self.store.head(identity)
        return self.keys_at(identity, None if head is None else head[1])

    def keys_at(
        self, identity: str, head_id: str | None
    ) -> tuple[bool, tuple[str, frozenset[str]] | None]:
        """`known_keys` for a head id the caller has just read (None: no chain here), e.g.
        with the handle's row in one query (`Store.lookup_with_head`). No database read."""
        if head_id is None:
            return True, None
        with self._lock:
            entry = self._keys.get(identity)
        if entry is not None and entry[0] == head_id:
            return True, entry[1]
        return False, None

    # ---------------------------------------------------------------- write

    def append(self, identity: str, body: bytes, client: str = "?") -> AppendResult:
        """Validate and store the posted links; ApiError for anything refused (see module text).

        `client` is the address the quotas charge for new links and fork evidence.
        """
        lines = split_lines(body)
        if not lines:
            raise ApiError(
                400,
                "empty",
                "the request has no links",
                hint="POST the chain as JSON Lines, one link per line",
            )
        peeked = _peek_seqno(lines[0][1])
        seen: int | None = None  # the head when this request first planned
        for _attempt in range(RETRIES):
            try:
                return self._append_once(
                    identity, lines, peeked or 1, seen, client, placed=peeked is not None
                )
            except _LostRace as lost:
                seen = lost.head if seen is None else seen
        raise ApiError(
            409,
            "busy",
            "other writers kept extending this chain while appending; retry",
            headers={"retry-after": "1"},
        )

    def _append_once(
        self,
        identity: str,
        lines: list[tuple[int, bytes]],
        first: int,
        seen: int | None,
        client: str,
        *,
        placed: bool = True,
    ) -> AppendResult:
        """`placed` False: the first line's seqno is unreadable, so it is read at seqno 1,
        and when the server holds links its error names no seqno (the link's position
        is unknown, and 1 would name the wrong link)."""
        # Only the ids from just before the first posted link on: a tail push
        # reads a few rows, not the whole chain.
        low = max(1, first - 1)
        stored = self.store.chain_ids(identity, low)
        ids = dict(stored)
        if stored:
            n = stored[-1][0]
        else:
            head = self.store.head(identity)
            n = 0 if head is None else head[0]
            if n >= low:  # another writer stored links between the two reads
                raise _LostRace(low - 1)
        if first > n + 1:
            have = f"has links up to seqno {n}" if n else "has no links of this identity"
            raise ApiError(
                422,
                "gap",
                f"the first posted link has seqno {first} but the server {have}",
                hint="push the whole chain (the server skips links it already has)",
                reason=str(ChainFault.SEQNO),
                seqno=first,
                line=lines[0][0],
                head_seqno=n,
            )
        # Skip what the server already has byte for byte (a full re-push).
        index, seqno = 0, first
        while (
            index < len(lines)
            and seqno <= n
            and hashlib.sha256(lines[index][1]).hexdigest() == ids[seqno]
        ):
            index += 1
            seqno += 1
        if index == len(lines):
            return AppendResult(identity, n, ids[n], 0)
        # Over the link quota whatever the links say: refused before validating them, so an
        # owner retrying at the quota does not cost the cached validator a rebuild each time.
        check_identity_quota(
            identity, seqno + len(lines) - index - 1, 0, max_links=self.max_links, max_bytes=0
        )

        validator = self._validator_at(identity, seqno - 1, ids, n)
        new_rows: list[tuple[int, str, bytes]] = []
        # A long push (a whole chain posted at once) has its signatures checked on the
        # worker pool (PooledFeed); `drain()` before acting on a link, so that a failing
        # signature earlier in the request is the error, as on one core.
        feeder = PooledFeed(validator, len(lines) - index)
        base = validator.lines_read
        numbers = [number for number, _line in lines[index:]]

        def refused(exc: ChainError, current: int) -> ApiError:
            # the request line of the link the error is about (a deferred check's link
            # may come before the line being read)
            number = numbers[exc.line - base - 1] if exc.line and exc.line > base else current
            unknown = not placed and n > 0 and number == lines[0][0]
            return _chain_error(exc, number, seqno=not unknown)

        try:
            for number, line in lines[index:]:
                try:
                    link = feeder.feed(line)
                    if link is not None and (
                        link.seqno == 1 or (link.seqno <= n and link.id != ids[link.seqno])
                    ):
                        feeder.drain()  # about to act on it: its signatures first
                except ChainError as exc:
                    raise refused(exc, number) from exc
                if link is None:  # pragma: no cover - blank lines were dropped
                    continue
                if link.seqno == 1 and link.signer != identity:
                    raise ApiError(
                        422,
                        "identity_mismatch",
                        f"this chain belongs to {link.signer[:80]} (the signer of seqno 1), not to {identity}",
                        hint="POST it to the URL of its own identity id",
                        line=number,
                    )
                if link.seqno <= n:
                    stored_id = ids[link.seqno]
                    if link.id == stored_id:
                        continue  # the stored link, spelt differently
                    if seen is not None and link.seqno > seen:
                        raise _chain_changed(link.seqno, stored_id, link.id, n)
                    self._charge(client, 1, len(link.canonical))  # evidence is stored too
                    self.store.add_fork(
                        identity, link.seqno, stored_id, link.id, link.canonical, format_time(now())
                    )
                    raise ApiError(
                        409,
                        "fork",
                        f"seqno {link.seqno} conflicts with the stored link: the server has {stored_id}, "
                        f"the request has {link.id}; the conflicting link is kept as fork evidence",
                        hint="a chain must never have two links with one seqno; see GET …/forks",
                        seqno=link.seqno,
                        stored_id=stored_id,
                        conflicting_id=link.id,
                        link_ids=[stored_id, link.id],
                    )
                new_rows.append((link.seqno, link.id, link.canonical))
            try:
                feeder.drain()
            except ChainError as exc:
                raise refused(exc, numbers[-1]) from exc
        finally:
            feeder.close()
        state = validator.state
        assert state is not None
        if new_rows:
            added = sum(len(line) for _s, _i, line in new_rows)
            stored = self._stored_bytes(identity, n, ids.get(n)) if self.max_bytes else 0
            check_identity_quota(
                identity,
                state.length,
                stored + added,
                max_links=self.max_links,
                max_bytes=self.max_bytes,
            )
            self._charge(client, len(new_rows), added)
            try:
                self.store.insert_links(identity, new_rows, format_time(now()))
            except Conflict as exc:  # another writer stored these seqnos first: plan again
                self._refund(client, len(new_rows), added)
                raise _LostRace(n) from exc
            head_seqno, head_id = state.length, state.head
            if self.max_bytes:
                self._put_size(identity, head_id, stored + added)
        else:  # only other spellings of stored links
            head_seqno, head_id = n, ids[n]
        if state.length == head_seqno:
            self._put(identity, head_id, validator)
        return AppendResult(identity, head_seqno, head_id, len(new_rows))

    # ----------------------------------------------------------------- read

    def forks(self, identity: str) -> list[dict[str, Any]]:
        out = []
        for row in self.store.forks(identity):
            out.append(
                {
                    "seqno": row["seqno"],
                    "stored_id": row["stored_id"],
                    "link_id": row["link_id"],
                    "first_seen": row["first_seen"],
                    "link": parse_json(bytes(row["line"])),
                }
            )
        return out


class _LostRace(Exception):
    """Another writer extended the chain while this request planned; `head` is what it saw."""

    def __init__(self, head: int) -> None:
        super().__init__(head)
        self.head = head


def _chain_changed(seqno: int, stored_id: str, posted_id: str, head: int) -> ApiError:
    """The answer to the loser of a race: not a fork to keep, a head that moved."""
    return ApiError(
        409,
        "chain_changed",
        f"the chain changed while this request was appended: another request stored seqno "
        f"{seqno} ({stored_id}) first; fetch the chain and retry",
        hint=f"GET the chain (?after={seqno - 1}), build your links on the new head and push again",
        seqno=seqno,
        stored_id=stored_id,
        conflicting_id=posted_id,
        head_seqno=head,
    )


def _chain_error(exc: ChainError, number: int, *, seqno: bool = True) -> ApiError:
    status, code = (
        (400, "malformed_link") if exc.reason == ChainFault.MALFORMED else (422, "invalid_link")
    )
    extra: dict[str, Any] = {"reason": str(exc.reason), "line": number}
    if exc.seqno is not None and seqno:
        extra["seqno"] = exc.seqno
    if exc.link_id is not None:
        extra["link_id"] = exc.link_id
    if exc.hint:
        extra["hint"] = exc.hint
    where = f"line {number} of the request" + (
        f" (seqno {exc.seqno})" if exc.seqno and seqno else ""
    )
    return ApiError(status, code, f"{where}: {exc.detail}", **extra)
