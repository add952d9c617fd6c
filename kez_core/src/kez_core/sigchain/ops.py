"""Building chains: `SigchainBuilder` appends one op at a time.

The builder fills in seqno, prev and created_at, makes the accept signature
with the added key's own Signer, signs the link, and then runs the link
through the same `ChainValidator` rules a reader applies, so it can only ever
produce a valid chain (a rule violation raises `ChainError` and nothing is
appended).

`make_link` and `accept_signature` are the raw pieces without any rule: for
tests and tools that need to craft links (including invalid ones).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from ..keys import Signer
from ..registry import Registry
from ..signed import PAYLOAD_VERSION, Signature, SignedObject
from ..timefmt import format_time, now, parse_time
from . import model as m
from .canon import jcs
from .validate import ChainValidator, accept_message

DEFAULT_INBOX_LIFETIME = timedelta(days=7)


def accept_signature(key: Signer, chain: str, seqno: int, prev: str | None) -> str:
    """The `accept` value: `key` signs that it takes its role at this place in this chain."""
    return key.sign(accept_message(chain, seqno, prev, key.key_id)).hex()


def make_link(
    signer: Signer,
    *,
    seqno: int,
    prev: str | None,
    op: str,
    body: dict[str, Any],
    created_at: str,
    extra: dict[str, Any] | None = None,
) -> SignedObject:
    """Sign a link payload as given, checking nothing (see `SigchainBuilder` for the checked way)."""
    payload = {
        "type": m.LINK_TYPE,
        "version": PAYLOAD_VERSION,
        "seqno": seqno,
        "prev": prev,
        "created_at": created_at,
        "op": op,
        "body": body,
        **(extra or {}),
    }
    return _sign(payload, signer)[0]


def _sign(payload: dict[str, Any], signer: Signer) -> tuple[SignedObject, bytes]:
    payload_jcs = jcs(payload)
    sig = signer.sign(payload_jcs).hex()
    return SignedObject(
        m.KIND, payload, Signature(signer.alg.signature_alg, signer.key_id, sig)
    ), payload_jcs


class SigchainBuilder:
    """Appends links to a new chain, or to an existing one (`SigchainBuilder.resume`).

    Every method signs with `signer` (who must be allowed to sign that op),
    returns the new `Link`, and keeps its line in `lines` unless
    `keep_lines=False` (then write `link.line` yourself). `at` sets
    created_at; by default the clock is used, never earlier than the
    previous link.
    """

    def __init__(
        self,
        *,
        registry: Registry | None = None,
        clock: Callable[[], datetime] = now,
        keep_lines: bool = True,
        _validator: ChainValidator | None = None,
    ) -> None:
        self._validator = _validator or ChainValidator(registry=registry)
        self.registry = self._validator.registry
        self.clock = clock
        self.keep_lines = keep_lines
        self.lines: list[bytes] = []

    @classmethod
    def resume(
        cls,
        lines: Iterable[bytes | str],
        *,
        registry: Registry | None = None,
        clock: Callable[[], datetime] = now,
        keep_lines: bool = True,
    ) -> SigchainBuilder:
        """Validate an existing chain and continue it (its lines are kept when `keep_lines`)."""
        validator = ChainValidator(registry=registry)
        builder = cls(clock=clock, keep_lines=keep_lines, _validator=validator)
        for line in lines:
            link = validator.feed(line)
            if link is not None and keep_lines:
                builder.lines.append(link.line)
        validator.result()
        return builder

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> m.ChainState | None:
        return self._validator.state

    @property
    def identity_id(self) -> str | None:
        return None if self.state is None else self.state.identity_id

    def export(self) -> bytes:
        """The kept lines as one JSON Lines document."""
        return b"".join(self.lines)

    # ------------------------------------------------------------------ core

    def _created_at(self, at: datetime | None) -> str:
        when = (at or self.clock()).replace(microsecond=0)
        state = self.state
        if at is None and state is not None:
            last = parse_time(state.last_created_at)
            when = max(when, last)
        return format_time(when)

    def _position(self, signer: Signer) -> tuple[int, str | None, str]:
        state = self.state
        if state is None:
            return 1, None, signer.key_id
        return state.length + 1, state.head, state.identity_id

    def append(
        self,
        signer: Signer,
        op: str,
        body: dict[str, Any],
        *,
        at: datetime | None = None,
    ) -> m.Link:
        """Sign and append a link with a ready body; raises ChainError when a rule is broken."""
        seqno, prev, _ = self._position(signer)
        payload = {
            "type": m.LINK_TYPE,
            "version": PAYLOAD_VERSION,
            "seqno": seqno,
            "prev": prev,
            "created_at": self._created_at(at),
            "op": op,
            "body": body,
        }
        obj, payload_jcs = _sign(payload, signer)
        link = self._validator._append_built(obj, payload_jcs)
        if self.keep_lines:
            self.lines.append(link.line)
        return link

    def _accept(self, signer: Signer, key: Signer) -> str:
        seqno, prev, chain = self._position(signer)
        return accept_signature(key, chain, seqno, prev)

    # ------------------------------------------------------------------ ops

    def claim(self, signer: Signer, claim: SignedObject, *, at: datetime | None = None) -> m.Link:
        """Add a claim (made with `kez_core.claim.create_claim` by the current primary)."""
        return self.append(signer, m.OP_CLAIM, {"claim": claim.to_dict()}, at=at)

    def revoke(
        self, signer: Signer, claim_id: str, reason: str = "", *, at: datetime | None = None
    ) -> m.Link:
        return self.append(signer, m.OP_REVOKE, {"claim_id": claim_id, "reason": reason}, at=at)

    def add_device(
        self, primary: Signer, device: Signer, name: str, *, at: datetime | None = None
    ) -> m.Link:
        """Add a device key; `device` signs the accept, so only a held key can be added."""
        body = {"device": device.key_id, "name": name, "accept": self._accept(primary, device)}
        return self.append(primary, m.OP_ADD_DEVICE, body, at=at)

    def remove_device(self, primary: Signer, device: str, *, at: datetime | None = None) -> m.Link:
        return self.append(primary, m.OP_REMOVE_DEVICE, {"device": device}, at=at)

    def add_recovery(self, primary: Signer, key: str, *, at: datetime | None = None) -> m.Link:
        return self.append(primary, m.OP_ADD_RECOVERY, {"key": key}, at=at)

    def rotate(self, signer: Signer, new_primary: Signer, *, at: datetime | None = None) -> m.Link:
        """Make `new_primary` the primary; `signer` is the primary or a recovery key."""
        body = {"new_primary": new_primary.key_id, "accept": self._accept(signer, new_primary)}
        return self.append(signer, m.OP_ROTATE, body, at=at)

    def add_inbox(
        self,
        signer: Signer,
        key: str | bytes,
        *,
        device: str | None = None,
        expires_at: datetime | None = None,
        at: datetime | None = None,
    ) -> m.Link:
        """Publish an X25519 inbox key for `device` (default: the signer's own key).

        `key` is `x25519:<hex>` or the 32 raw public bytes; it expires after
        `expires_at` (default: created_at + 7 days).
        """
        if isinstance(key, bytes | bytearray):
            key = f"x25519:{bytes(key).hex()}"
        created = self._created_at(at)
        expires = expires_at or (parse_time(created) + DEFAULT_INBOX_LIFETIME)
        body = {"key": key, "device": device or signer.key_id, "expires_at": format_time(expires)}
        return self.append(signer, m.OP_ADD_INBOX, body, at=parse_time(created))
