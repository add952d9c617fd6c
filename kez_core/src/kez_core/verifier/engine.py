"""Verify an identity (its chain and every claimed proof) or one subject.

All fetches of a run go through one `Fetcher`, so concurrency and
per-channel limits hold across the whole graph, and share one `RunScope`
(`ChannelContext.scope`), so channels can reuse clients and relay
connections between the proofs of the run; the scope is closed when the run
ends, so a later run starts afresh. Results carry the reason in words, the
source read and the time (DESIGN.md §5), and the raw texts read, so a run
can be saved as a snapshot and re-checked offline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import attrs

from ..claim import KIND as CLAIM_KIND
from ..claim import check_claim
from ..encoding import decode_candidates
from ..errors import KezError, UnknownNameError
from ..protocols import Channel, ChannelContext, FetchOutcome, ProofCandidate
from ..registry import Registry, default_registry
from ..sigchain import ChainState, ChainVerdict, ClaimRecord
from ..status import ClaimCheck, Status
from ..subjects import normalize_subject
from ..timefmt import now
from .fetching import FetchPolicy, Fetcher
from .judge import judge_record, needs_fetch
from .scope import RunScope

Progress = Callable[[ClaimCheck], None]


@attrs.frozen
class ProofReport:
    """One claim's verdict and what was read to reach it."""

    check: ClaimCheck
    channel: str
    attempts: int = 0
    reachable: bool | None = None  # None: not fetched (the chain settled it)
    candidates: tuple[ProofCandidate, ...] = ()


@attrs.frozen
class IdentityReport:
    identity_id: str
    current_primary: str
    chain_status: Status  # valid, invalid or fork (kez_core.sigchain.chain_verdict)
    chain_reason: str
    head: str
    length: int
    checked_at: datetime
    offline: bool
    devices: dict[str, str]
    recovery_keys: tuple[str, ...]
    proofs: tuple[ProofReport, ...]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for proof in self.proofs:
            out[proof.check.status.value] = out.get(proof.check.status.value, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        """The chain is whole and no proof is invalid, missing or unchecked."""
        bad = {Status.INVALID, Status.NOT_FOUND, Status.UNREACHABLE, Status.FORK}
        return self.chain_status is Status.VALID and not any(
            p.check.status in bad for p in self.proofs
        )


@attrs.frozen
class SubjectReport:
    """What a channel publishes for one subject, each claim found checked on its own."""

    subject: str
    checked_at: datetime
    reachable: bool
    reason: str
    source: str
    claims: tuple[ClaimCheck, ...]
    candidates: tuple[ProofCandidate, ...] = ()

    @property
    def status(self) -> Status:
        if not self.reachable:
            return Status.UNREACHABLE
        if not self.claims:
            return Status.NOT_FOUND
        for wanted in (Status.VALID, Status.EXPIRED, Status.INVALID):
            if any(c.status is wanted for c in self.claims):
                return wanted
        return self.claims[0].status


@contextlib.asynccontextmanager
async def run_scope(ctx: ChannelContext, policy: FetchPolicy) -> AsyncIterator[ChannelContext]:
    """`ctx` with a `RunScope` for one run, closed at its end (a caller's own scope is kept open)."""
    if ctx.scope is not None:
        yield ctx
        return
    scope = RunScope(concurrency=min(policy.per_channel, policy.concurrency))
    try:
        yield attrs.evolve(ctx, scope=scope)
    finally:
        await scope.aclose()


def _channel_and_handle(subject: str, registry: Registry) -> tuple[Channel, str]:
    name, _, handle = subject.partition(":")
    return registry.channel(name), handle


async def verify_identity(
    state: ChainState,
    *,
    registry: Registry | None = None,
    ctx: ChannelContext | None = None,
    policy: FetchPolicy | None = None,
    fork: object | None = None,
    at: datetime | None = None,
    progress: Progress | None = None,
    fetcher: Fetcher | None = None,
    verdict: ChainVerdict | None = None,
) -> IdentityReport:
    """Check every claim of a validated chain, fetching proofs concurrently.

    `verdict` is the chain's verdict from the copies it was merged from
    (`chain_verdict`); without one the chain counts as valid unless `fork`.
    """
    registry = registry or default_registry()
    policy = policy or FetchPolicy()
    ctx = ctx or ChannelContext(timeout=policy.timeout)
    at = at or now()
    fetcher = fetcher or Fetcher(policy)

    async def one(record: ClaimRecord, run_ctx: ChannelContext) -> ProofReport:
        channel_name = record.subject.partition(":")[0]
        if not needs_fetch(state, record, at, fork):
            check = judge_record(state, record, None, at=at, fork=fork, registry=registry)
            report = ProofReport(check, channel_name)
        else:
            try:
                channel, handle = _channel_and_handle(record.subject, registry)
            except UnknownNameError as exc:
                outcome = FetchOutcome(
                    reachable=False,
                    reason=f"no channel plugin for {channel_name!r} is installed ({exc.message})",
                )
                attempts = 0
            else:
                outcome, attempts = await fetcher.fetch(channel, handle, run_ctx)
            check = judge_record(state, record, outcome, at=at, fork=fork, registry=registry)
            report = ProofReport(
                check, channel_name, attempts, outcome.reachable, outcome.candidates
            )
        if progress is not None:
            progress(report.check)
        return report

    async with run_scope(ctx, policy) as run_ctx:
        proofs = await asyncio.gather(*(one(record, run_ctx) for record in state.claims.values()))
    fork_reason = getattr(fork, "reason", "") if fork is not None else ""
    chain_status = Status.FORK if fork is not None else Status.VALID
    chain_reason = fork_reason or f"{state.length} valid links"
    if verdict is not None:
        chain_status, chain_reason = verdict.status, verdict.reason
    return IdentityReport(
        identity_id=state.identity_id,
        current_primary=state.current_primary,
        chain_status=chain_status,
        chain_reason=chain_reason,
        head=state.head,
        length=state.length,
        checked_at=at,
        offline=False,
        devices=dict(state.devices),
        recovery_keys=tuple(sorted(state.recovery_keys)),
        proofs=tuple(proofs),
    )


async def verify_subject(
    subject: str,
    *,
    registry: Registry | None = None,
    ctx: ChannelContext | None = None,
    policy: FetchPolicy | None = None,
    at: datetime | None = None,
    fetcher: Fetcher | None = None,
) -> SubjectReport:
    """Fetch what the channel publishes for `subject` and check each claim about it offline."""
    registry = registry or default_registry()
    policy = policy or FetchPolicy()
    ctx = ctx or ChannelContext(timeout=policy.timeout)
    at = at or now()
    subject = normalize_subject(subject, registry)
    channel, handle = _channel_and_handle(subject, registry)
    async with run_scope(ctx, policy) as run_ctx:
        outcome, _ = await (fetcher or Fetcher(policy)).fetch(channel, handle, run_ctx)
    claims: list[ClaimCheck] = []
    if outcome.reachable:
        for candidate in outcome.candidates:
            try:  # each block or token on its own: a broken one never hides a valid proof
                objects = [
                    c.obj for c in decode_candidates(candidate.text, registry) if c.obj is not None
                ]
            except KezError:
                continue
            for obj in objects:
                if obj.kind == CLAIM_KIND and obj.payload.get("subject") == subject:
                    claims.append(
                        check_claim(obj, registry=registry, at=at, source=candidate.source)
                    )
    return SubjectReport(
        subject,
        at,
        outcome.reachable,
        outcome.reason,
        outcome.source,
        tuple(claims),
        outcome.candidates,
    )
