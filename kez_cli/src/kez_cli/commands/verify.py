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
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer

from kez_core.errors import ExitCode, KeyFormatError
from kez_core.keystore import Keystore
from kez_core.registry import default_registry
from kez_core.status import ClaimCheck, Status
from kez_core.verifier import FetchPolicy, SnapshotStore
from kez_core.verifier.service import BAD_STATUSES, TargetReport, Verifier
from kez_core.sigserver_client import configured_servers

from ..channel_options import (
    CHANNEL,
    CONTEXT_SETTINGS,
    make_context,
    options_help,
    split_channel_args,
)
from ..options import HandleServerOpt, JsonOpt, SigServerOpt
from ..output import State, emit_json, err_console, note, show_line

_COLOURS = {
    "valid": "green",
    "revoked": "yellow",
    "expired": "yellow",
    "superseded": "yellow",
    "unreachable": "magenta",
}


def _print_identity(data: dict[str, Any]) -> None:
    tag = " (offline, from snapshot)" if data["offline"] else ""
    chain_colour = "green" if data["chain_status"] == "valid" else "red"
    show_line((data["identity_id"], "bold"), tag)
    show_line(
        "  chain ",
        (data["chain_status"], chain_colour),
        f" ({data['chain_reason']}), primary {data['current_primary']}",
    )
    for claim in data["claims"]:
        colour = _COLOURS.get(claim["status"], "red")
        show_line("  ", (f"{claim['status']:<11}", colour), f" {claim['subject']}")
        show_line(f"  {'':<11} ", (str(claim["reason"]), "dim"))


def _print_subject(data: dict[str, Any]) -> None:
    colour = _COLOURS.get(data["status"], "red")
    show_line(
        (data["status"], f"{colour} bold"), f"  {data['subject']}  ", (str(data["reason"]), "dim")
    )
    for claim in data["claims"]:
        show_line(
            f"  {claim['status']:<8} signed by {claim['primary']}  ", (str(claim["source"]), "dim")
        )


@contextlib.contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[ClaimCheck], None]]:
    """A transient bar on stderr, advanced once per judged claim."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("checking proofs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("proofs", total=total)
        yield lambda _check: progress.advance(task)


def verify(
    ctx: typer.Context,
    targets: Annotated[
        list[str],
        typer.Argument(help="Subjects, identity ids, keystore identity names or chain files."),
    ],
    offline: Annotated[
        bool, typer.Option("--offline", help="Re-check the latest snapshot; fetch nothing.")
    ] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Proofs fetched at once.", min=1, max=512)
    ] = 32,
    per_channel: Annotated[
        int, typer.Option("--per-channel", help="Requests at once per channel.", min=1, max=256)
    ] = 16,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds per request.", min=0.1)
    ] = 10.0,
    retries: Annotated[
        int, typer.Option("--retries", help="Retries after 429/5xx/timeouts.", min=0, max=10)
    ] = 2,
    no_snapshot: Annotated[
        bool, typer.Option("--no-snapshot", help="Do not save this run as a snapshot.")
    ] = False,
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
    targets, channel_args = split_channel_args([*targets, *ctx.args], registry, CHANNEL)
    if not targets:
        raise KeyFormatError(
            "nothing to verify", hint="name a subject, identity id, identity name or chain file"
        )
    verifier = Verifier(
        registry,
        store,
        servers=configured_servers(sig_server or []),
        snapshots=SnapshotStore(store.home),
        offline=offline,
        ctx=make_context(channel_args, registry, timeout, CHANNEL),
        policy=FetchPolicy(
            concurrency=concurrency, per_channel=per_channel, timeout=timeout, retries=retries
        ),
        handle_server=handle_server,
        save_snapshots=not no_snapshot,
        on_note=None if json_ else note,
        progress=_progress_bar if err_console.is_terminal and not json_ else None,
    )
    reports = asyncio.run(_verify_and_show(verifier, targets, json_))
    statuses = [s for r in reports for s in r.statuses]
    ok = all(r.ok for r in reports)
    if json_:
        emit_json({"ok": ok, "results": [r.to_json() for r in reports]})
    if any(s in BAD_STATUSES for s in statuses):
        raise typer.Exit(ExitCode.NOT_VALID)
    if any(s is Status.UNREACHABLE for s in statuses):
        if not json_:
            note("some proofs could not be reached; retry later (they are not counted as invalid)")
        raise typer.Exit(ExitCode.NETWORK)


async def _verify_and_show(
    verifier: Verifier, targets: list[str], json_: bool
) -> list[TargetReport]:
    """Every target's report, each printed as soon as it is ready (unless --json)."""
    reports: list[TargetReport] = []
    async for report in verifier.iter_verify(targets):
        reports.append(report)
        if not json_:
            (_print_subject if report.kind == "subject" else _print_identity)(report.to_json())
    return reports


def register(app: typer.Typer) -> None:
    app.command(
        "verify",
        context_settings=CONTEXT_SETTINGS,
        epilog=options_help(default_registry(), CHANNEL),
    )(verify)
