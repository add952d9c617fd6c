"""Merging copies of one chain read from several places (file, server, nostr, gist).

Each copy is validated on its own; a copy that breaks a rule at seqno k still
contributes its valid links 1..k-1 (every one of them is a correctly signed,
authorised link) and its error is reported. Then:

- copies whose valid links are all prefixes of the longest one agree: the
  longest wins (a longer valid chain extends a shorter one);
- two copies holding different links at the same seqno are a fork: the
  result names the first such seqno and every link id seen there, and its
  state is the state of the links all copies agree on;
- copies of different identities (different signers of seqno 1) cannot be
  merged: `ChainError` (`identity`).

A copy that is a prefix of a copy already validated is not verified again
(its links are byte for byte the same), so merging k copies of one chain
costs about one validation.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from collections.abc import Iterable, Iterator, Sequence

import attrs

from ..errors import DecodeError
from ..registry import Registry
from ..status import Status
from .canon import LineParser
from .errors import ChainError, ChainFault
from .model import ChainState
from .validate import read_line


@attrs.frozen
class Fork:
    """Two or more valid links with one seqno: the copies disagree from here on."""

    seqno: int
    link_ids: tuple[str, ...]  # distinct link ids at `seqno`, sorted
    copies: tuple[tuple[int, ...], ...]  # for each id, the indexes of the copies holding it

    @property
    def reason(self) -> str:
        return f"fork at seqno {self.seqno}: links {', '.join(self.link_ids)}"


@attrs.frozen
class CopyReport:
    """How one input copy fared: its number of valid links and its error, if any."""

    index: int
    valid_links: int
    error: ChainError | None = None


@attrs.frozen
class MergeResult:
    state: ChainState | None  # the winner's state; on a fork, the state of the agreed prefix
    lines: tuple[bytes, ...]  # canonical lines (JCS + "\n") of the winner / the agreed prefix
    fork: Fork | None
    winner: int | None  # index of the copy whose chain was taken (None on a fork or no chain)
    copies: tuple[CopyReport, ...]

    @property
    def status(self) -> Status:
        """The chain's verdict (`chain_verdict`): valid, invalid, fork or not_found."""
        return chain_verdict(self).status

    @property
    def verdict(self) -> ChainVerdict:
        """The chain's verdict with its reason (`chain_verdict`)."""
        return chain_verdict(self)

    @property
    def identity_id(self) -> str | None:
        return None if self.state is None else self.state.identity_id


@attrs.frozen
class ChainVerdict:
    """What a reader concludes about a chain from all the copies it read (`chain_verdict`)."""

    status: Status  # valid, invalid, fork or not_found
    reason: str
    damaged: tuple[CopyReport, ...] = ()  # copies that break a rule, whatever the verdict

    @property
    def ok(self) -> bool:
        return self.status is Status.VALID


def chain_verdict(merged: MergeResult) -> ChainVerdict:
    """THE rule for a chain's verdict, used by `kez sigchain verify`, `kez verify`,
    `MergeResult.status` and the `Verifier` service (docs/sigchain.md §8):

    1. `fork` when two copies hold different valid links at one seqno;
    2. with no valid link at all: `invalid` when a copy breaks a rule, else `not_found`;
    3. `invalid` when a copy breaks a rule at a seqno past the merged chain's end:
       it shows a link there that no copy holds validly (a one-copy chain broken
       at seqno k is this case);
    4. else `valid`. A copy that breaks a rule at a seqno another copy holds a
       valid link for (a damaged or tampered copy, a copy that kept a refused
       future link) is reported in `damaged` but does not decide: the valid
       links of the other copies override it.
    """
    damaged = tuple(c for c in merged.copies if c.error is not None)
    if merged.fork is not None:
        return ChainVerdict(Status.FORK, merged.fork.reason, damaged)
    if merged.state is None:
        if damaged:
            return ChainVerdict(Status.INVALID, _damage(damaged[0]), damaged)
        return ChainVerdict(Status.NOT_FOUND, "no links", damaged)
    length = merged.state.length
    beyond = [c for c in damaged if c.valid_links >= length]
    if beyond:
        return ChainVerdict(Status.INVALID, _damage(beyond[0]), damaged)
    left_out = ""
    if damaged:
        left_out = f"; {len(damaged)} damaged cop{'y' if len(damaged) == 1 else 'ies'} overridden by valid links"
    return ChainVerdict(Status.VALID, f"{length} valid links{left_out}", damaged)


def _damage(copy: CopyReport) -> str:
    assert copy.error is not None
    return f"copy {copy.index + 1}: {copy.error.message}"


@attrs.frozen
class _Copy:
    """One copy as read: its lines as given, and the canonical lines and ids of the links
    before its first unreadable line."""

    raw: list[bytes | str]  # every line as given (blank ones too: they count for line numbers)
    canon: list[bytes]
    ids: list[str]
    first: str | None  # signer of seqno 1
    error: ChainError | None
    exact: bool  # every link line is its canonical form (give or take surrounding whitespace)


def _read_copy(lines: Iterable[bytes | str]) -> _Copy:
    """Canonical lines, ids and first signer of a copy, up to its first unreadable line.

    This is the cheap first look used to compare copies; the verdict on a
    copy is always the validator's, reading the lines as given (`_validate`).
    """
    parser = LineParser()
    raw: list[bytes | str] = []
    canon: list[bytes] = []
    ids: list[str] = []
    first: str | None = None
    exact = True
    for number, line in enumerate(lines, 1):
        raw.append(line)
        try:
            read = read_line(parser, line)
        except DecodeError as exc:
            error = ChainError(ChainFault.MALFORMED, exc.message, seqno=len(ids) + 1, line=number)
            return _Copy(raw, canon, ids, first, error, False)
        if read is None:
            continue
        obj, _payload, canonical, _simple = read
        if first is None:
            first = obj.signature.key
        if exact:
            stripped = line.strip()
            exact = (
                stripped if isinstance(stripped, bytes) else stripped.encode("utf-8", "replace")
            ) == canonical
        canon.append(canonical + b"\n")
        ids.append(hashlib.sha256(canonical).hexdigest())
    return _Copy(raw, canon, ids, first, None, exact)


def _validate(
    lines: Sequence[bytes | str], registry: Registry | None
) -> tuple[int, ChainState | None, ChainError | None]:
    """Validate lines as given (the one strict reader: a `"seqno": 2.0` the first look
    would have canonicalised to `2` is refused here, at its own seqno and line)."""
    from .parallel import validate_prefix  # a long copy's signatures on every core

    known = _known.get()
    if known is not None and known[0] is registry:
        found = known[1].get(tuple(lines))
        if found is not None:
            state, error = found
            return (0 if state is None else state.length), state, error
    state, error = validate_prefix(lines, registry=registry)
    return (0 if state is None else state.length), state, error


# copies validated ahead by `prevalidated`: (registry, lines as given -> validate_prefix result)
_known: contextvars.ContextVar[
    tuple[
        Registry | None, dict[tuple[bytes | str, ...], tuple[ChainState | None, ChainError | None]]
    ]
    | None
] = contextvars.ContextVar("kez_sigchain_prevalidated", default=None)


@contextlib.contextmanager
def prevalidated(
    groups: Sequence[Sequence[Sequence[bytes | str]]], *, registry: Registry | None = None
) -> Iterator[None]:
    """Validate the longest copy of each group (one identity's copies) together, so
    that many small chains share the pool (`parallel.validate_many`); `merge_copies`
    calls inside the block take those verdicts instead of validating again.

    The verdicts are `validate_prefix`'s, so every merge gives what it gives
    without this block; a copy not validated ahead is validated when merged.
    """
    from .parallel import validate_many

    longest = (max(g, key=len) for g in groups if any(len(c) for c in g))
    chosen = [list(copy) for copy in longest]
    results = validate_many(chosen, registry=registry)
    table = {tuple(lines): result for lines, result in zip(chosen, results, strict=True)}
    token = _known.set((registry, table))
    try:
        yield
    finally:
        _known.reset(token)


def merge_many(
    groups: Sequence[Sequence[Sequence[bytes | str]]], *, registry: Registry | None = None
) -> list[MergeResult | ChainError]:
    """`merge_copies` of each group (the copies of one identity's chain), the chains'
    signature checks on the pool together (`prevalidated`). A group whose copies
    belong to different identities gets its ChainError in its place."""
    out: list[MergeResult | ChainError] = []
    with prevalidated(groups, registry=registry):
        for copies in groups:
            try:
                out.append(merge_copies(copies, registry=registry))
            except ChainError as exc:
                out.append(exc)
    return out


def merge_copies(
    copies: Sequence[Iterable[bytes | str]],
    *,
    registry: Registry | None = None,
    identity: str | None = None,
) -> MergeResult:
    """Merge copies of one identity's chain; see the module text. Raises ChainError (`identity`)."""
    read = [_read_copy(c) for c in copies]
    n = len(read)
    valid_len = [0] * n
    errors: list[ChainError | None] = [r.error for r in read]
    states: dict[int, ChainState] = {}
    done: list[int] = []  # copies validated in full, longest first
    for i in sorted(range(n), key=lambda i: len(read[i].ids), reverse=True):
        ids = read[i].ids
        if not ids:
            continue
        # A copy whose lines are, byte for byte, canonical links of a copy already
        # validated is that copy's prefix: same text, same verdict. Any other
        # spelling is validated as given.
        if read[i].exact and any(
            len(ids) <= valid_len[j] and read[j].ids[: len(ids)] == ids for j in done
        ):
            valid_len[i] = len(ids)
            continue
        raw = read[i].raw if read[i].error is None else read[i].raw[:-1]
        length, state, error = _validate(raw, registry)
        valid_len[i] = length
        if error is not None:
            errors[i] = error
        if state is not None:
            states[i] = state
        done.append(i)

    live = [i for i in range(n) if valid_len[i] > 0]
    reports = tuple(CopyReport(i, valid_len[i], errors[i]) for i in range(n))
    identities = {read[i].first for i in live}
    if identity is not None:
        identities.add(identity)
    if len(identities) > 1:
        raise ChainError(
            ChainFault.IDENTITY,
            f"the copies belong to different identities: {', '.join(sorted(map(str, identities)))}",
            seqno=1,
            hint="merge only copies of one identity's chain",
        )
    if not live:
        return MergeResult(None, (), None, None, reports)

    best = max(live, key=lambda i: (valid_len[i], i in states, -i))
    best_ids = read[best].ids
    split = None  # earliest seqno where some copy differs from the longest
    for i in live:
        ids = read[i].ids
        for k in range(valid_len[i]):
            if ids[k] != best_ids[k]:
                if split is None or k + 1 < split:
                    split = k + 1
                break
    if split is None:
        state = states.get(best)
        if state is None or state.length != valid_len[best]:
            _, state, _ = _validate(read[best].canon[: valid_len[best]], registry)
        return MergeResult(state, tuple(read[best].canon[: valid_len[best]]), None, best, reports)

    holders: dict[str, list[int]] = {}
    for i in live:
        if valid_len[i] >= split:
            holders.setdefault(read[i].ids[split - 1], []).append(i)
    link_ids = tuple(sorted(holders))
    fork = Fork(split, link_ids, tuple(tuple(holders[x]) for x in link_ids))
    agreed = read[best].canon[: split - 1]
    state = _validate(agreed, registry)[1] if agreed else None
    return MergeResult(state, tuple(agreed), fork, None, reports)
