"""Streaming validation: one link at a time, state only, a typed error at the first fault.

`ChainValidator.feed(line)` checks one line against the state built from the
lines before it and updates that state. Nothing about earlier links is kept
except the state (see `model.ChainState`), so a chain of any length is read
with memory bounded by its keys and claims.

Checks, in order, for each link (the first failure raises `ChainError`):

1. the line is strict JSON (UTF-8, ≤ 64 KiB, no duplicate keys) and a signed
   object of kind `link` with the payload fields of a link  → `malformed`
2. `seqno` is the previous seqno + 1 (1 for the first line)   → `seqno`
3. `prev` is the id of the previous link (null for seqno 1)    → `prev`
4. `created_at` is not before the previous link's              → `time`;
   nor more than 5 minutes (MAX_CLOCK_SKEW) ahead of `clock()`   → `future`
5. `op` is known                                                → `unknown_op`
6. the signing key (`signature.key`) may sign this op now:
   a rotated-away primary never may                             → `rotated_key`;
   otherwise the op's role table                                → `signer`
7. the signature verifies over JCS(payload)                     → `signature`
8. the body has exactly the op's fields and obeys its rules     → `body`;
   accept signatures of added keys verify                       → `accept`
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from hashlib import sha256 as _sha256

from ..errors import DecodeError, KezError
from ..protocols import KeyAlgorithm
from ..registry import Registry, default_registry
from ..signed import SignedObject
from ..timefmt import MAX_CLOCK_SKEW, format_time, now
from . import model as m
from .canon import LineParser, jcs
from .errors import ChainError, ChainFault
from .rules import APPLY, SIGNERS, OpRules, who_may
from .wire import (
    accept_message,
    envelope,
    is_hex,
    link_time_ok,
    parse_link_time,
    read_canonical,
    read_line,
)

_OP_FIELDS = m.OP_FIELDS
_new_link = tuple.__new__  # m.Link(...) without NamedTuple's Python-level __new__
_LINK_FIELDS = frozenset(m.LINK_FIELDS)
_SIGNERS = SIGNERS

__all__ = ["ChainValidator", "accept_message", "iter_links", "read_line", "validate_lines"]


class ChainValidator(OpRules):
    """Validates a chain link by link. `state` is None until the first link is accepted."""

    def __init__(
        self, *, registry: Registry | None = None, clock: Callable[[], datetime] = now
    ) -> None:
        self.registry = registry or default_registry()
        self.clock = clock
        # created_at of a link may be at most this (clock() + MAX_CLOCK_SKEW, as text);
        # refreshed from the clock only when a link goes past it, so a past-dated link
        # (nearly all) costs one string comparison
        self._ahead_limit = ""
        self.state: m.ChainState | None = None
        self.lines_read = 0
        self._parser = LineParser()
        self._sig_algs: dict[str, KeyAlgorithm] = {}
        # parsed public keys of the keys that currently hold a role (pruned on removal)
        self._pub: dict[str, tuple[KeyAlgorithm, bytes]] = {}
        self._parsed: dict[str, tuple[KeyAlgorithm, bytes]] = {}  # any parsed key, at most 256
        # Deferred signature checks (sigchain/parallel.py): when a list, every signature
        # check appends (alg, public, message, sig) here and, in `_where`, what the
        # one-core path would raise if it failed, instead of verifying inline.
        self._checks: list[tuple[KeyAlgorithm, bytes, bytes, bytes]] | None = None
        self._where: list[tuple[ChainFault, str, int, int | None, str | None]] = []
        self._link_id: str | None = None  # id of the link being checked (for deferred checks)

    # ------------------------------------------------------------------ input

    @property
    def next_seqno(self) -> int:
        return 1 if self.state is None else self.state.length + 1

    def _fail(
        self,
        reason: ChainFault,
        message: str,
        *,
        link_id: str | None = None,
        hint: str | None = None,
    ) -> ChainError:
        return ChainError(
            reason,
            message,
            seqno=self.next_seqno,
            line=self.lines_read or None,
            link_id=link_id,
            hint=hint,
        )

    def feed(self, line: bytes | str) -> m.Link | None:
        """Validate one JSON Lines line (a trailing newline is allowed). Blank lines are skipped."""
        verify = not self._trusted  # False only inside feed_trusted
        self.lines_read += 1
        if type(line) is bytes:
            fast = read_canonical(self._parser, line)
            if fast is not None:  # a canonical line (what writers emit): read in one pass
                obj, payload_jcs, canonical, sig = fast
                return self._check(obj, payload_jcs, canonical, verify=verify, simple=True, sig=sig)
        try:
            read = read_line(self._parser, line)
        except DecodeError as exc:
            raise self._fail(ChainFault.MALFORMED, exc.message, hint=exc.hint) from exc
        if read is None:
            return None
        obj, payload_jcs, canonical, simple = read
        return self._check(obj, payload_jcs, canonical, verify=verify, simple=simple)

    def feed_trusted(self, line: bytes | str) -> m.Link | None:
        """Re-read a line this program validated before, to rebuild the state: every rule
        but the signature checks (link, embedded claim and accept signatures).

        For a store that only ever holds links that passed `feed` (kez-server's
        database): rebuilding a chain's state after a restart then costs the
        parsing alone, about a fifth of a full validation. Never for input
        from elsewhere: a changed signature would go unnoticed.
        """
        self._trusted = True  # the op rules skip embedded claim and accept signatures
        try:
            return self.feed(line)
        finally:
            self._trusted = False

    def feed_object(self, obj: SignedObject) -> m.Link:
        """Validate one link given as a SignedObject (counts as one line)."""
        self.lines_read += 1
        if obj.kind != m.KIND:
            raise self._fail(ChainFault.MALFORMED, f"expected a 'link' object, got {obj.kind!r}")
        try:
            obj = SignedObject.from_dict(obj.to_dict())  # the same envelope checks as a line
            payload_jcs = jcs(obj.payload)
            canonical = envelope(payload_jcs, jcs(obj.signature.to_dict()))
        except KezError as exc:
            raise self._fail(ChainFault.MALFORMED, exc.message) from exc
        return self._check(obj, payload_jcs, canonical, verify=True, simple=False)

    def _append_built(self, obj: SignedObject, payload_jcs: bytes) -> m.Link:
        """For the builder: all rules, but the link's own signature (just made) is not re-verified."""
        self.lines_read += 1
        canonical = envelope(payload_jcs, jcs(obj.signature.to_dict()))
        return self._check(obj, payload_jcs, canonical, verify=False, simple=False)

    def result(self) -> m.ChainState:
        """The final state; ChainError (`empty`) when no link was read."""
        if self.state is None:
            raise ChainError(
                ChainFault.EMPTY, "the chain has no links", hint="a chain starts with seqno 1"
            )
        return self.state

    # ------------------------------------------------------------------ rules

    def _check(
        self,
        obj: SignedObject,
        payload_jcs: bytes,
        canonical: bytes,
        *,
        verify: bool,
        simple: bool,
        sig: bytes | None = None,
    ) -> m.Link:
        """All checks of one link; `sig` is bytes.fromhex(obj.signature.sig) when known."""
        state = self.state
        p = obj.payload
        link_id = _sha256(canonical).hexdigest()
        fail = self._fail

        # 1. shape
        if not p.keys() >= _LINK_FIELDS:
            for field in m.LINK_FIELDS:
                if field not in p:
                    raise fail(ChainFault.MALFORMED, f"payload has no {field!r}", link_id=link_id)
        seqno, prev, created_at, op, body = (
            p["seqno"],
            p["prev"],
            p["created_at"],
            p["op"],
            p["body"],
        )
        if type(seqno) is not int or seqno < 1:
            raise fail(
                ChainFault.MALFORMED, "payload.seqno must be a positive integer", link_id=link_id
            )
        if state is None:
            expected, want_prev, last_time = 1, None, None
        else:
            expected, want_prev, last_time = state.length + 1, state.head, state.last_created_at
        # the expected prev is a link id, so a prev equal to it is 64 lowercase hex
        if prev is not None and prev != want_prev and not is_hex(prev, 64):
            raise fail(
                ChainFault.MALFORMED,
                "payload.prev must be null or 64 lowercase hex",
                link_id=link_id,
            )
        if not isinstance(op, str):
            raise fail(ChainFault.MALFORMED, "payload.op must be a string", link_id=link_id)
        if not isinstance(body, dict):
            raise fail(ChainFault.MALFORMED, "payload.body must be a JSON object", link_id=link_id)
        # Valid times are one fixed-width form: as text they sort chronologically.
        if created_at != last_time and not link_time_ok(created_at):
            try:
                parse_link_time(created_at, "created_at")
            except DecodeError as exc:
                raise fail(ChainFault.MALFORMED, exc.message, link_id=link_id) from exc
            raise AssertionError("link_time_ok and parse_link_time disagree")  # pragma: no cover

        # 2. position
        if seqno != expected:
            kind = "duplicated or out of order" if seqno < expected else "missing before it (a gap)"
            raise fail(
                ChainFault.SEQNO,
                f"expected seqno {expected}, found {seqno}: a link is {kind}",
                link_id=link_id,
            )
        if prev != want_prev:
            raise fail(
                ChainFault.PREV,
                f"prev is {prev}, but the previous link's id is {want_prev}",
                link_id=link_id,
            )
        if last_time is not None and created_at < last_time:
            raise fail(
                ChainFault.TIME,
                f"created_at {created_at} is before the previous link's {last_time}",
                link_id=link_id,
            )
        if created_at > self._ahead_limit and not self._trusted:
            current = self.clock()
            self._ahead_limit = format_time(current + MAX_CLOCK_SKEW)
            if created_at > self._ahead_limit:
                raise fail(
                    ChainFault.FUTURE,
                    f"created_at {created_at} is more than {_minutes(MAX_CLOCK_SKEW)} ahead of "
                    f"this reader's clock ({format_time(current)})",
                    link_id=link_id,
                    hint="check the clock of the computer that signed it; a chain holding such "
                    "a link is valid up to the link before it (docs/sigchain.md §6)",
                )
        fields = _OP_FIELDS.get(op)
        if fields is None:
            raise fail(
                ChainFault.UNKNOWN_OP,
                f"unknown op {op[:40]!r} (known: {', '.join(m.OPS)})",
                link_id=link_id,
                hint="a newer kez may know this op",
            )

        # 3. signer
        signature = obj.signature
        signer = signature.key
        if state is None:
            signer_pub = self._key(signer, "signature.key", ChainFault.SIGNER)
            primary, identity, role = signer, signer, "primary"
        else:
            if signer == state.current_primary:
                role = "primary"
            elif signer in state.devices:
                role = "device"
            elif signer in state.recovery_keys:
                role = "recovery"
            elif signer in state.retired:
                r = state.retired[signer]
                raise fail(
                    ChainFault.ROTATED_KEY,
                    f"signed by {signer}, which was rotated away at seqno {r.seqno} ({r.rotated_at}) "
                    "and may sign nothing after that",
                    link_id=link_id,
                )
            else:
                role = None
            if role not in _SIGNERS[op] or (
                op == m.OP_ADD_INBOX and role == "device" and body.get("device") != signer
            ):
                raise fail(
                    ChainFault.SIGNER,
                    f"{signer} ({role or 'a key this chain does not know'}) may not sign op {op!r}; "
                    f"{who_may(op)} may",
                    link_id=link_id,
                )
            signer_pub = self._pub.get(signer) or self._key(
                signer, "signature.key", ChainFault.SIGNER
            )

        # 4. signature
        alg, public = signer_pub
        if verify:
            sig_alg = self._sig_algs.get(signature.alg) or self._sig_alg(signature.alg)
            if sig_alg is None:
                raise fail(
                    ChainFault.SIGNATURE,
                    f"unknown signature alg {signature.alg[:40]!r}",
                    link_id=link_id,
                )
            if sig_alg is not alg:
                raise fail(
                    ChainFault.SIGNATURE,
                    f"signature.alg {signature.alg} does not belong to key {signer[:80]}",
                    link_id=link_id,
                )
            if self._checks is not None:
                self._checks.append((alg, public, payload_jcs, sig or bytes.fromhex(signature.sig)))
                self._where.append(
                    (
                        ChainFault.SIGNATURE,
                        BAD_LINK_SIGNATURE,
                        seqno,
                        self.lines_read or None,
                        link_id,
                    )
                )
            elif not alg.verify(public, payload_jcs, sig or bytes.fromhex(signature.sig)):
                raise fail(ChainFault.SIGNATURE, BAD_LINK_SIGNATURE, link_id=link_id)

        # 5. body
        if body.keys() != fields:
            missing = fields - body.keys()
            extra = body.keys() - fields
            if "accept" in missing:
                raise fail(
                    ChainFault.ACCEPT,
                    f"{op} body has no accept signature by the added key",
                    link_id=link_id,
                    hint="the added key must sign JCS({type: kez.accept, chain, seqno, prev, key})",
                )
            parts = []
            if missing:
                parts.append(f"lacks {', '.join(sorted(missing))}")
            if extra:
                parts.append(
                    f"has unknown field(s) {', '.join(sorted(str(x)[:40] for x in extra))}"
                )
            raise fail(ChainFault.BODY, f"{op} body {' and '.join(parts)}", link_id=link_id)

        self._link_id = link_id
        if state is None:
            state = m.ChainState(
                identity_id=identity,
                current_primary=primary,
                head="",
                length=0,
                last_created_at=created_at,
            )
            self._remember(signer, signer_pub)
            try:
                APPLY[op](self, state, body, seqno, prev, created_at, signer, simple)
            except ChainError as exc:
                if exc.link_id is None:
                    exc.link_id = link_id
                self._forget(signer)
                raise
            self.state = state
        else:
            try:
                APPLY[op](self, state, body, seqno, prev, created_at, signer, simple)
            except ChainError as exc:
                if exc.link_id is None:
                    exc.link_id = link_id
                raise
        state.head = link_id
        state.length = seqno
        state.last_created_at = created_at
        return _new_link(
            m.Link, (obj, link_id, seqno, prev, created_at, op, body, signer, canonical)
        )

    def _check_signature(
        self,
        alg: KeyAlgorithm,
        public: bytes,
        message: bytes,
        sig: bytes,
        reason: ChainFault,
        text: str,
    ) -> None:
        """A signature check inside an op's rules: inline, or deferred (see `_checks`)."""
        if self._checks is not None:
            self._checks.append((alg, public, message, sig))
            self._where.append(
                (reason, text, self.next_seqno, self.lines_read or None, self._link_id)
            )
        elif not alg.verify(public, message, sig):
            raise self._fail(reason, text)

    def deferred_error(self, index: int) -> ChainError:
        """The error the one-core path raises when deferred check `index` fails."""
        reason, text, seqno, line, link_id = self._where[index]
        return ChainError(reason, text, seqno=seqno, line=line, link_id=link_id)


BAD_LINK_SIGNATURE = "the signature does not verify: the link was changed or signed by another key"


def _minutes(delta: object) -> str:
    seconds = int(delta.total_seconds())  # type: ignore[attr-defined]
    return f"{seconds // 60} minutes" if seconds % 60 == 0 else f"{seconds} seconds"


def validate_lines(
    lines: Iterable[bytes | str], *, registry: Registry | None = None
) -> m.ChainState:
    """Validate a whole chain given line by line; return its state or raise ChainError.

    A long chain's signatures are checked on every core (sigchain/parallel.py),
    with exactly the verdict of `ChainValidator.feed` line by line.
    """
    from .parallel import validate_stream

    return validate_stream(lines, registry=registry)


def iter_links(
    lines: Iterable[bytes | str], *, registry: Registry | None = None
) -> Iterable[m.Link]:
    """Validate line by line and yield each valid link (streaming; raises at the first fault)."""
    validator = ChainValidator(registry=registry)
    for line in lines:
        link = validator.feed(line)
        if link is not None:
            yield link
    validator.result()
