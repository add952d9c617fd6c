"""The `Verifier` service: what `kez verify` does, for any caller.

Shaped like datasette's `Datasette` object and llm's `model.prompt()`: a
caller builds one `Verifier` with its registry, keystore and settings, then
awaits `verify(targets)` and gets one `TargetReport` per target. Every rule
that decides trust lives here, not in the CLI, so a library caller, a UI and
`kez verify` reach the same verdicts:

- target resolution: a chain file, a handle (`alice@example.org`), a
  keystore identity name, an identity id (`ed25519:…`, `nostr:…`, `npub1…`)
  or else a subject (`github:alice`);
- a handle is looked up on its server, its chain fetched from the handle's
  `sigchain_url` and every configured kez-server, and the chain must be the
  handle's identity's, registered by one of its primaries
  (`kez_core.chat.peers.check_handle_chain`);
- every copy of a chain (local, servers) is merged (`merge_copies`) and the
  chain's verdict is `kez_core.sigchain.chain_verdict`, the one rule that
  `kez sigchain verify` uses too;
- an online run of an identity is saved as a snapshot, which `offline=True`
  re-checks without the network; every claim's status joins its history.

The CLI only parses flags into a `Verifier` and renders the reports.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal

import attrs

from ..errors import KeyFormatError, KezError, StoreError
from ..keys import normalize_key_id
from ..keystore import Keystore
from ..protocols import ChannelContext
from ..registry import Registry
from ..sigchain import MergeResult, chain_verdict, merge_copies, prevalidated, read_chain_lines
from ..status import ClaimCheck, Status, to_json
from .engine import IdentityReport, ProofReport, SubjectReport, verify_identity, verify_subject
from .fetching import FetchPolicy
from .snapshots import SnapshotStore, recheck_offline

#: Statuses that make a verification fail (exit 1 in the CLI); `unreachable` is retryable (exit 5).
BAD_STATUSES = frozenset({Status.INVALID, Status.NOT_FOUND, Status.FORK})

#: Given the number of claims to check, a context manager that yields a callback
#: called once per judged claim (the CLI draws a progress bar with it).
ProgressFactory = Callable[[int], AbstractContextManager[Callable[[ClaimCheck], None]]]

Kind = Literal["chain", "handle", "subject"]


@attrs.frozen
class Resolved:
    """What a target names: a chain (identity id or None, local lines), a handle or a subject."""

    kind: Kind
    identity_id: str | None = None
    lines: tuple[bytes, ...] = ()
    handle: tuple[str, str] | None = None  # (handle, server)
    subject: str | None = None


@attrs.frozen
class TargetReport:
    """The verdict on one target: an identity (chain + proofs) or a bare subject."""

    target: str
    identity: IdentityReport | None = None
    subject: SubjectReport | None = None
    snapshot: str | None = (
        None  # where the run was saved (identity, online), or the snapshot re-checked
    )
    handle: dict[str, Any] | None = None  # the handle server's answer, when the target was a handle
    servers: tuple[
        dict[str, Any], ...
    ] = ()  # one note per kez-server asked: read / not_found / unreachable

    @property
    def kind(self) -> Literal["identity", "subject"]:
        return "identity" if self.identity is not None else "subject"

    @property
    def statuses(self) -> list[Status]:
        """The chain's status and every proof's (identity), or the subject's status."""
        if self.identity is not None:
            return [self.identity.chain_status, *(p.check.status for p in self.identity.proofs)]
        assert self.subject is not None
        return [self.subject.status]

    @property
    def ok(self) -> bool:
        return not any(s in BAD_STATUSES or s is Status.UNREACHABLE for s in self.statuses)

    def to_json(self) -> dict[str, Any]:
        """The report as `kez verify --json` shows it (docs/cli.md)."""
        if self.identity is None:
            assert self.subject is not None
            return _subject_dict(self.subject)
        data = _identity_dict(self.identity, self.snapshot)
        if self.handle is not None:
            data["handle"] = self.handle
        if self.servers:
            data["servers"] = list(self.servers)
        return data


def _proof_dict(proof: ProofReport) -> dict[str, Any]:
    data: dict[str, Any] = to_json(proof.check)
    data.update({"channel": proof.channel, "attempts": proof.attempts})
    return data


def _identity_dict(report: IdentityReport, snapshot: str | None) -> dict[str, Any]:
    return {
        "kind": "identity",
        "identity_id": report.identity_id,
        "current_primary": report.current_primary,
        "chain_status": report.chain_status.value,
        "chain_reason": report.chain_reason,
        "length": report.length,
        "head": report.head,
        "checked_at": to_json(report.checked_at),
        "offline": report.offline,
        "devices": [{"key": k, "name": n} for k, n in report.devices.items()],
        "recovery_keys": list(report.recovery_keys),
        "counts": report.counts(),
        "ok": report.ok,
        "snapshot": snapshot,
        "claims": [_proof_dict(p) for p in report.proofs],
    }


def _subject_dict(report: SubjectReport) -> dict[str, Any]:
    return {
        "kind": "subject",
        "subject": report.subject,
        "status": report.status.value,
        "reason": report.reason
        or (f"{len(report.claims)} claim(s) found" if report.claims else "no proof found"),
        "source": report.source,
        "checked_at": to_json(report.checked_at),
        "claims": [to_json(c) for c in report.claims],
    }


def _no_chain(identity_id: str) -> StoreError:
    return StoreError(
        f"no sigchain of {identity_id} is stored here or on the configured servers",
        hint="import a copy with `kez sigchain import FILE`, pass the chain file, or name a --sig-server",
    )


@attrs.define
class Verifier:
    """Verifies subjects, identities, handles and chain files under KEZ's trust rules.

    `servers` are kez-server base URLs whose copies of a chain are merged in;
    `handle_server` overrides where handles are looked up (tests, proxies);
    `offline` re-checks the latest snapshots and fetches nothing;
    `save_snapshots=False` keeps an online run from being saved.
    `on_note` hears what is worth telling a person but decides nothing (a
    server that could not be reached); `progress` draws claims as they are
    judged. Neither changes a verdict.
    """

    registry: Registry
    keystore: Keystore
    servers: Sequence[str] = ()
    snapshots: SnapshotStore | None = None
    offline: bool = False
    ctx: ChannelContext | None = None
    policy: FetchPolicy = attrs.field(factory=FetchPolicy)
    handle_server: str | None = None
    save_snapshots: bool = True
    on_note: Callable[[str], None] | None = None
    progress: ProgressFactory | None = None

    def __attrs_post_init__(self) -> None:
        if self.snapshots is None:
            self.snapshots = SnapshotStore(self.keystore.home)
        if self.ctx is None:
            self.ctx = ChannelContext(timeout=self.policy.timeout)

    # ------------------------------------------------------------ resolution

    def resolve(self, target: str) -> Resolved:
        """What `target` names; reads local files only (never the network).

        A chain's `lines` are its local copy, empty when none is stored (the
        servers may hold it).
        """
        from ..sigserver_client import split_handle

        path = Path(target)
        if path.is_file():
            return Resolved("chain", None, tuple(read_chain_lines(path)))
        handle = (
            split_handle(target.strip().lower()) if ":" not in target.split("@", 1)[0] else None
        )
        if handle is not None:
            return Resolved("handle", handle=handle)
        store = self.keystore
        if ":" not in target and not target.startswith("npub1"):
            record = store.get(target)  # a keystore identity name
            return Resolved(
                "chain",
                record.identity_id,
                tuple(read_chain_lines(store.chain_path(record.identity_id))),
            )
        try:
            identity_id = normalize_key_id(target, self.registry)
        except KeyFormatError:
            return Resolved("subject", subject=target)
        local = store.chain_path(identity_id)
        return Resolved(
            "chain", identity_id, tuple(read_chain_lines(local)) if local.is_file() else ()
        )

    # ------------------------------------------------------------ verification

    async def verify(self, targets: Sequence[str]) -> list[TargetReport]:
        """One report per target, in order. A target that cannot be verified at all
        (no chain anywhere, a handle whose chain is another identity's) raises its
        typed error."""
        return [report async for report in self.iter_verify(targets)]

    async def iter_verify(self, targets: Sequence[str]) -> AsyncIterator[TargetReport]:
        """Like `verify`, yielding each report as soon as it is ready (the CLI prints it then)."""
        resolved: dict[str, Resolved] = {}
        if not self.offline and len(targets) > 1:
            # Local chains of many targets are validated together, their signatures on
            # the worker pool (`prevalidated`); a target that does not resolve here is
            # resolved (and fails) in its turn.
            for target in targets:
                with contextlib.suppress(KezError):  # reads local files only
                    resolved[target] = self.resolve(target)
        local_chains = [[list(r.lines)] for r in resolved.values() if r.kind == "chain" and r.lines]
        group = (
            prevalidated(local_chains, registry=self.registry)
            if len(local_chains) > 1
            else contextlib.nullcontext()
        )
        with group:
            for target in targets:
                yield await self.verify_one(target, resolved.get(target))

    async def verify_one(self, target: str, resolved: Resolved | None = None) -> TargetReport:
        """The report on one target (resolved here unless given)."""
        found = resolved or self.resolve(target)
        handle_info: dict[str, Any] | None = None
        if found.kind == "handle":
            handle_info, found = await self._follow_handle(found)
        known = found.identity_id
        if (
            found.kind == "chain"
            and known
            and not found.lines
            and not self.servers
            and handle_info is None
        ):
            if known.startswith("nostr:") and not self.offline:
                found = Resolved("subject", subject=known)  # a nostr key is also a subject
            else:
                raise _no_chain(known)
        if found.kind == "subject":
            assert found.subject is not None
            if self.offline:
                raise StoreError(
                    "--offline re-checks identities from snapshots; a bare subject has none"
                )
            subject = await verify_subject(
                found.subject, registry=self.registry, ctx=self.ctx, policy=self.policy
            )
            return TargetReport(target, subject=subject)
        return await self._verify_chain(target, found, handle_info)

    async def _follow_handle(self, found: Resolved) -> tuple[dict[str, Any], Resolved]:
        """The handle server's answer, and the chain it points at (its local copy)."""
        from ..sigserver_client import handle_base_url, lookup_handle

        assert found.handle is not None
        handle, server = found.handle
        if self.offline:
            raise StoreError(
                "--offline fetches nothing, so it cannot look up a handle",
                hint="re-check by identity id: `kez handle lookup` shows it",
            )
        info = await lookup_handle(
            handle_base_url(server, self.handle_server), handle, server, self.policy.timeout
        )
        identity_id = normalize_key_id(info["primary"], self.registry)
        local = self.keystore.chain_path(identity_id)
        return info, Resolved(
            "chain", identity_id, tuple(read_chain_lines(local)) if local.is_file() else ()
        )

    async def _verify_chain(
        self, target: str, found: Resolved, handle_info: dict[str, Any] | None
    ) -> TargetReport:
        snapshots = self.snapshots
        assert snapshots is not None
        lines = list(found.lines)
        server_notes: list[dict[str, Any]] = []
        if self.offline:
            snapshot = snapshots.latest_readings(found.identity_id or self._identity_of(lines))
            if snapshot is None:
                raise StoreError(
                    "no snapshot to re-check", hint="run `kez verify` online once first"
                )
            report = recheck_offline(snapshot, registry=self.registry)
            saved: str | None = str(snapshot.path)
        else:
            copies = [lines] if lines else []
            if self.servers or handle_info:
                sigchain_url = (handle_info or {}).get("sigchain_url")
                extra, server_notes = await self._server_copies(
                    found.identity_id or self._identity_of(lines),
                    [sigchain_url] if isinstance(sigchain_url, str) else [],
                )
                copies += extra
            if not copies:
                raise _no_chain(found.identity_id or target)
            merged = merge_copies(copies, registry=self.registry)
            if handle_info is not None and merged.state is not None:
                from ..chat.peers import check_handle_chain

                check_handle_chain(handle_info, merged.state)
            if merged.state is None:
                bad = next((c.error for c in merged.copies if c.error), None)
                raise StoreError(
                    f"the chain of {target} is not valid: {bad.message if bad else 'no links'}"
                )
            report = await self._run_identity(merged)
            saved = str(snapshots.save(report, merged.lines)) if self.save_snapshots else None
        snapshots.record_history(report)
        return TargetReport(
            target, identity=report, snapshot=saved, handle=handle_info, servers=tuple(server_notes)
        )

    async def _server_copies(
        self, identity_id: str, extra_urls: list[str]
    ) -> tuple[list[list[bytes]], list[dict[str, Any]]]:
        from ..sigserver_client import fetch_server_copies

        return await fetch_server_copies(
            self.servers,
            identity_id,
            self.policy.timeout,
            extra_urls=extra_urls,
            on_unreachable=self.on_note,
        )

    def _identity_of(self, lines: list[bytes]) -> str:
        merged = merge_copies([lines], registry=self.registry)
        if merged.identity_id is None:
            raise StoreError("the chain file holds no valid links")
        return merged.identity_id

    async def _run_identity(self, merged: MergeResult) -> IdentityReport:
        state = merged.state
        assert state is not None
        verdict = chain_verdict(merged)
        bar = (
            self.progress(len(state.claims))
            if self.progress is not None
            else contextlib.nullcontext(None)
        )
        with bar as advance:
            return await verify_identity(
                state,
                registry=self.registry,
                ctx=self.ctx,
                policy=self.policy,
                fork=merged.fork,
                verdict=verdict,
                progress=advance,
            )
