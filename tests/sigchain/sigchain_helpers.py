"""Shared helpers for the sigchain tests (imported by name; this directory is on sys.path)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from types import SimpleNamespace
from typing import Any

import pytest
from kez_core.claim import create_claim
from kez_core.jcs import canonicalize
from kez_core.keys import Signer
from kez_core.sigchain import ChainError, ChainState, SigchainBuilder, make_link, validate_lines
from kez_core.signed import SignedObject
from kez_core.timefmt import format_time

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    """A clock that moves one minute per reading, from T0."""

    def __init__(self, start: datetime = T0, step: timedelta = timedelta(minutes=1)) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


def make_keys() -> SimpleNamespace:
    return SimpleNamespace(
        primary=Signer.generate(),
        device=Signer.generate(),
        phone=Signer.generate("nostr"),
        recovery=Signer.generate(),
        new=Signer.generate(),
        stranger=Signer.generate(),
    )


def builder(**kwargs: Any) -> SigchainBuilder:
    return SigchainBuilder(clock=Clock(), **kwargs)


def line_of(obj: SignedObject) -> bytes:
    return canonicalize(obj.to_dict()) + b"\n"


def next_link(
    state: ChainState | None,
    signer: Signer,
    op: str,
    body: dict[str, Any],
    *,
    seqno: int | None = None,
    prev: Any = "auto",
    created_at: datetime | str | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """A link line signed by `signer` continuing `state`, with any field overridable (no rules)."""
    if seqno is None:
        seqno = 1 if state is None else state.length + 1
    if prev == "auto":
        prev = None if state is None else state.head
    if created_at is None:
        created_at = T0 + timedelta(days=1)
    if isinstance(created_at, datetime):
        created_at = format_time(created_at)
    obj = make_link(
        signer, seqno=seqno, prev=prev, op=op, body=body, created_at=created_at, extra=extra
    )
    return line_of(obj)


def expect_chain_error(lines: list[bytes], reason: str, seqno: int | None) -> ChainError:
    with pytest.raises(ChainError) as info:
        validate_lines(lines)
    err = info.value
    assert err.reason == reason, f"{err.reason}: {err}"
    assert err.seqno == seqno, str(err)
    assert err.exit_code == 1
    assert str(seqno) in str(err) if seqno is not None else True
    return err


@cache
def every_op_chain() -> tuple[bytes, ...]:
    """A valid chain using every op: recovery, device, claims, inbox keys, a revoke, a rotation."""
    keys = make_keys()
    b = builder()
    b.add_recovery(keys.primary, keys.recovery.key_id)
    b.add_device(keys.primary, keys.phone, "phone")
    claim = create_claim(keys.primary, "github:alice", created_at=T0)
    b.claim(keys.phone, claim)
    b.add_inbox(keys.phone, b"\x01" * 32)
    b.revoke(keys.primary, claim.id, "moved")
    b.rotate(keys.recovery, keys.new)
    b.claim(keys.new, create_claim(keys.new, "dns:example.org", created_at=T0))
    b.add_inbox(keys.new, b"\x02" * 32)
    return tuple(b.lines)
