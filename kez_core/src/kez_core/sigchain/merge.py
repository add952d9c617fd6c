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

import hashlib
from collections.abc import Iterable, Sequence

import attrs

from ..errors import DecodeError
from ..registry import Registry
from ..status import Status
from .canon import LineParser
from .errors import ChainError, ChainFault
from .model import ChainState
from .validate import ChainValidator, read_line


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
        """`fork` when copies conflict, `valid` when a chain was found, else `not_found`."""
        if self.fork is not None:
            return Status.FORK
        return Status.VALID if self.state is not None else Status.NOT_FOUND

    @property
    def identity_id(self) -> str | None:
        return None if self.state is None else self.state.identity_id


def _read_copy(
    lines: Iterable[bytes | str],
) -> tuple[list[bytes], list[str], str | None, ChainError | None]:
    """Canonical lines, ids and first signer of a copy, up to its first unreadable line."""
    parser = LineParser()
    canon: list[bytes] = []
    ids: list[str] = []
    first: str | None = None
    for number, line in enumerate(lines, 1):
        try:
            read = read_line(parser, line)
        except DecodeError as exc:
            return (
                canon,
                ids,
                first,
                ChainError(ChainFault.MALFORMED, exc.message, seqno=len(ids) + 1, line=number),
            )
        if read is None:
            continue
        obj, _payload, canonical, _simple = read
        if first is None:
            first = obj.signature.key
        canon.append(canonical + b"\n")
        ids.append(hashlib.sha256(canonical).hexdigest())
    return canon, ids, first, None


def _validate(
    lines: Sequence[bytes], registry: Registry | None
) -> tuple[int, ChainState | None, ChainError | None]:
    validator = ChainValidator(registry=registry)
    try:
        for line in lines:
            validator.feed(line)
    except ChainError as exc:
        state = validator.state
        return (0 if state is None else state.length), state, exc
    return len(lines), validator.state, None


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
    errors: list[ChainError | None] = [r[3] for r in read]
    states: dict[int, ChainState] = {}
    done: list[int] = []  # copies validated in full, longest first
    for i in sorted(range(n), key=lambda i: len(read[i][1]), reverse=True):
        canon, ids, _, _ = read[i]
        if not ids:
            continue
        covered = next(
            (j for j in done if len(ids) <= valid_len[j] and read[j][1][: len(ids)] == ids), None
        )
        if covered is not None:
            valid_len[i] = len(ids)
            continue
        length, state, error = _validate(canon, registry)
        valid_len[i] = length
        if error is not None:
            errors[i] = error
        if state is not None:
            states[i] = state
        done.append(i)

    live = [i for i in range(n) if valid_len[i] > 0]
    reports = tuple(CopyReport(i, valid_len[i], errors[i]) for i in range(n))
    identities = {read[i][2] for i in live}
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
    best_ids = read[best][1]
    split = None  # earliest seqno where some copy differs from the longest
    for i in live:
        ids = read[i][1]
        for k in range(valid_len[i]):
            if ids[k] != best_ids[k]:
                if split is None or k + 1 < split:
                    split = k + 1
                break
    if split is None:
        state = states.get(best)
        if state is None or state.length != valid_len[best]:
            _, state, _ = _validate(read[best][0][: valid_len[best]], registry)
        return MergeResult(state, tuple(read[best][0][: valid_len[best]]), None, best, reports)

    holders: dict[str, list[int]] = {}
    for i in live:
        if valid_len[i] >= split:
            holders.setdefault(read[i][1][split - 1], []).append(i)
    link_ids = tuple(sorted(holders))
    fork = Fork(split, link_ids, tuple(tuple(holders[x]) for x in link_ids))
    agreed = read[best][0][: split - 1]
    state = _validate(agreed, registry)[1] if agreed else None
    return MergeResult(state, tuple(agreed), fork, None, reports)
