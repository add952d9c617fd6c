"""`kez verify`: check identities and subjects against what is published.

A target is a subject (`github:alice`), an identity id (`ed25519:…`,
`nostr:…`, `npub1…`) whose chain is stored locally, a keystore identity
name, or a chain file. For an identity every claimed proof is fetched
concurrently (per-channel limits, timeouts, retries on 429/5xx); each online
run is saved as a snapshot, which `--offline` re-checks without the network,
and every claim's status is appended to its history.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer

from kez_core.errors import ExitCode, KeyFormatError, KezError, StoreError
from kez_core.keys import normalize_key_id
from kez_core.keystore import Keystore
from kez_core.registry import Registry, default_registry
from kez_core.sigchain import merge_copies, prevalidated
from kez_core.status import Status, to_json
from kez_core.verifier import FetchPolicy, IdentityReport, SnapshotStore, SubjectReport, recheck_offline, verify_identity, verify_subject

from ..channel_options import CHANNEL, CONTEXT_SETTINGS, make_context, options_help, split_channel_args
from ..io import read_chain_file
from ..options import HandleServerOpt, JsonOpt, SigServerOpt
from kez_core.sigserver_client import configured_servers, handle_base_url, lookup_handle, server_copies, split_handle
from ..output import State, emit_json, err_console, note, show_line

_BAD = {Status.INVALID, Status.NOT_FOUND, Status.FORK}
_COLOURS = {"valid": "green", "revoked": "yellow", "expired": "yellow", "superseded": "yellow", "unreachable": "magenta"}


def _resolve(target: str, store: Keystore, registry: Registry) -> tuple[str, Any]:
    """('chain', (identity_id, lines)), ('handle', (handle, server)) or ('subject', subject).

    `lines` is the local copy ([] when none is stored: the servers may hold it).
    """
    path = Path(target)
    if path.is_file():
        return "chain", (None, read_chain_file(path))
    handle = split_handle(target.strip().lower()) if ":" not in target.split("@", 1)[0] else None
    if handle is not None:
        return "handle", handle
    if ":" not in target and not target.startswith("npub1"):
        record = store.get(target)  # a keystore identity name
        return "chain", (record.identity_id, read_chain_file(store.chain_path(record.identity_id)))
    try:
        identity_id = normalize_key_id(target, registry)
    except KeyFormatError:
        return "subject", target
    local = store.chain_path(identity_id)
    if local.is_file():
        return "chain", (identity_id, read_chain_file(local))
    return "chain", (identity_id, [])


def _no_chain(identity_id: str) -> StoreError:
    return StoreError(
        f"no sigchain of {identity_id} is stored here or on the configured servers",
        hint="import a copy with `kez sigchain import FILE`, pass the chain file, or name a --sig-server",
    )


def _proof_dict(proof) -> dict[str, Any]:
    data = to_json(proof.check)
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
        "reason": report.reason or (f"{len(report.claims)} claim(s) found" if report.claims else "no proof found"),
        "source": report.source,
        "checked_at": to_json(report.checked_at),
        "claims": [to_json(c) for c in report.claims],
    }


def _print_identity(data: dict[str, Any]) -> None:
    tag = " (offline, from snapshot)" if data["offline"] else ""
    chain_colour = "green" if data["chain_status"] == "valid" else "red"
    show_line((data["identity_id"], "bold"), tag)
    show_line("  chain ", (data["chain_status"], chain_colour), f" ({data['chain_reason']}), primary {data['current_primary']}")
    for claim in data["claims"]:
        colour = _COLOURS.get(claim["status"], "red")
        show_line("  ", (f"{claim['status']:<11}", colour), f" {claim['subject']}")
        show_line(f"  {'':<11} ", (str(claim["reason"]), "dim"))


def _print_subject(data: dict[str, Any]) -> None:
    colour = _COLOURS.get(data["status"], "red")
    show_line((data["status"], f"{colour} bold"), f"  {data['subject']}  ", (str(data["reason"]), "dim"))
    for claim in data["claims"]:
        show_line(f"  {claim['status']:<8} signed by {claim['primary']}  ", (str(claim["source"]), "dim"))


def verify(
    ctx: typer.Context,
    targets: Annotated[list[str], typer.Argument(help="Subjects, identity ids, keystore identity names or chain files.")],
    offline: Annotated[bool, typer.Option("--offline", help="Re-check the latest snapshot; fetch nothing.")] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Proofs fetched at once.", min=1, max=512)] = 32,
    per_channel: Annotated[int, typer.Option("--per-channel", help="Requests at once per channel.", min=1, max=256)] = 16,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request.", min=0.1)] = 10.0,
    retries: Annotated[int, typer.Option("--retries", help="Retries after 429/5xx/timeouts.", min=0, max=10)] = 2,
    no_snapshot: Annotated[bool, typer.Option("--no-snapshot", help="Do not save this run as a snapshot.")] = False,
    sig_server: SigServerOpt = None,
    handle_server: HandleServerOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Verify subjects and identities against what their channels publish.

    Exit 0 when everything checked is fine (revoked and expired claims are
    reported, not failures); 1 when a proof is invalid or missing or a chain
    is forked; 5 when the only problem is that something could not be reached.
    Every channel plugin adds its own flags (see `kez plugins`), e.g.
    --github-api URL, --dns-server HOST:PORT, --relay URL. A handle
    (alice@example.org) is looked up on its server and its sigchain fetched
    from there; chains are also read from every --sig-server and merged with
    the local copy.
    """
    State.json_mode = json_
    registry = default_registry()
    store = Keystore(registry=registry)
    snapshots = SnapshotStore(store.home)
    targets, channel_args = split_channel_args([*targets, *ctx.args], registry, CHANNEL)
    if not targets:
        raise KeyFormatError("nothing to verify", hint="name a subject, identity id, identity name or chain file")
    channel_ctx = make_context(channel_args, registry, timeout, CHANNEL)
    policy = FetchPolicy(concurrency=concurrency, per_channel=per_channel, timeout=timeout, retries=retries)
    servers = configured_servers(sig_server or [])
    results: list[dict[str, Any]] = []
    statuses: list[Status] = []
    # Local chains of many targets are validated together, their signatures on the
    # worker pool (`prevalidated`); a target that does not resolve here is resolved
    # (and fails) in its turn below.
    resolved: dict[str, tuple[str, Any]] = {}
    if not offline and len(targets) > 1:
        for target in targets:
            with contextlib.suppress(KezError):  # reads local files only
                resolved[target] = _resolve(target, store, registry)
    local_chains = [[v[1]] for k, v in resolved.values() if k == "chain" and v[1]]
    with prevalidated(local_chains, registry=registry) if len(local_chains) > 1 else contextlib.nullcontext():
        _verify_targets(targets, resolved, store, registry, snapshots, servers, offline, channel_ctx,
                        policy, timeout, no_snapshot, handle_server, json_, results, statuses)
    ok = not any(s in _BAD or s is Status.UNREACHABLE for s in statuses)
    if json_:
        emit_json({"ok": ok, "results": results})
    if any(s in _BAD for s in statuses):
        raise typer.Exit(ExitCode.NOT_VALID)
    if any(s is Status.UNREACHABLE for s in statuses):
        if not json_:
            note("some proofs could not be reached; retry later (they are not counted as invalid)")
        raise typer.Exit(ExitCode.NETWORK)


def _verify_targets(targets, resolved, store, registry, snapshots, servers, offline, channel_ctx,
                    policy, timeout, no_snapshot, handle_server, json_, results, statuses) -> None:
    """Verify each target in turn, appending its JSON data to `results` and its statuses."""
    for target in targets:
        kind, value = resolved.get(target) or _resolve(target, store, registry)
        handle_info: dict[str, Any] | None = None
        server_notes: list[dict[str, Any]] = []
        if kind == "handle":
            handle, server = value
            if offline:
                raise StoreError(
                    "--offline fetches nothing, so it cannot look up a handle",
                    hint="re-check by identity id: `kez handle lookup` shows it",
                )
            handle_info = asyncio.run(lookup_handle(handle_base_url(server, handle_server), handle, server, timeout))
            identity_id = normalize_key_id(handle_info["primary"], registry)
            local = store.chain_path(identity_id)
            kind, value = "chain", (identity_id, read_chain_file(local) if local.is_file() else [])
        if kind == "chain" and value[0] and not value[1] and not servers and handle_info is None:
            if value[0].startswith("nostr:") and not offline:
                kind, value = "subject", value[0]  # a nostr key is also a subject
            else:
                raise _no_chain(value[0])
        if kind == "subject":
            if offline:
                raise StoreError("--offline re-checks identities from snapshots; a bare subject has none")
            report = asyncio.run(verify_subject(value, registry=registry, ctx=channel_ctx, policy=policy))
            data = _subject_dict(report)
            statuses.append(report.status)
        else:
            identity_id, lines = value
            if offline:
                snapshot = snapshots.latest_readings(identity_id or _identity_of(lines, registry))
                if snapshot is None:
                    raise StoreError("no snapshot to re-check", hint="run `kez verify` online once first")
                ireport = recheck_offline(snapshot, registry=registry)
                saved = str(snapshot.path)
            else:
                copies = [lines] if lines else []
                if not offline and (servers or handle_info):
                    sigchain_url = (handle_info or {}).get("sigchain_url")
                    extra, server_notes = server_copies(
                        servers, identity_id or _identity_of(lines, registry), timeout,
                        extra_urls=[sigchain_url] if isinstance(sigchain_url, str) else [],
                        on_unreachable=None if json_ else note,
                    )
                    copies += extra
                if not copies:
                    raise _no_chain(identity_id or target)
                merged = merge_copies(copies, registry=registry)
                if handle_info is not None and merged.state is not None:
                    from kez_core.chat.peers import check_handle_chain

                    check_handle_chain(handle_info, merged.state)
                if merged.state is None:
                    bad = next((c.error for c in merged.copies if c.error), None)
                    raise StoreError(f"the chain of {target} is not valid: {bad.message if bad else 'no links'}")
                ireport = asyncio.run(_run_identity(merged, registry, channel_ctx, policy, json_))
                saved = None if no_snapshot else str(snapshots.save(ireport, merged.lines))
            snapshots.record_history(ireport)
            data = _identity_dict(ireport, saved)
            if handle_info is not None:
                data["handle"] = handle_info
            if server_notes:
                data["servers"] = server_notes
            statuses.append(ireport.chain_status)
            statuses.extend(p.check.status for p in ireport.proofs)
        results.append(data)
        if not json_:
            (_print_subject if kind == "subject" else _print_identity)(data)


def _identity_of(lines: list[bytes], registry: Registry) -> str:
    merged = merge_copies([lines], registry=registry)
    if merged.identity_id is None:
        raise StoreError("the chain file holds no valid links")
    return merged.identity_id


async def _run_identity(merged, registry, channel_ctx, policy, json_: bool) -> IdentityReport:
    state = merged.state
    show = err_console.is_terminal and not json_
    if not show:
        return await verify_identity(state, registry=registry, ctx=channel_ctx, policy=policy, fork=merged.fork)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("checking proofs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task("proofs", total=len(state.claims))
        return await verify_identity(
            state, registry=registry, ctx=channel_ctx, policy=policy, fork=merged.fork,
            progress=lambda _check: progress.advance(task),
        )


def register(app: typer.Typer) -> None:
    app.command("verify", context_settings=CONTEXT_SETTINGS, epilog=options_help(default_registry(), CHANNEL))(verify)
