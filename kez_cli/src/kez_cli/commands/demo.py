"""`kez demo`: the whole story in one command, in a throwaway keystore.

It is the README's first command: it needs no account and reaches nothing
beyond 127.0.0.1. Part one is offline: two identities (Ed25519 and
nostr/BIP-340), claims in every registered encoding, verification, and a
tampered claim shown `invalid`, an old one `expired`. Part two starts the
local server each installed channel plugin offers (hook `kez_demo_servers`:
DNS, GitHub, nostr relay, Bluesky PDS, Mastodon), publishes a claim through every channel with the same code as
`kez claim publish`, and verifies the identity with the same engine as
`kez verify`, reading without credentials.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from kez_core.claim import check_claim, create_claim
from kez_core.encoding import decode_any
from kez_core.keystore import Keystore
from kez_core.registry import default_registry
from kez_core.signed import SignedObject
from kez_core.status import Status
from kez_core.timefmt import now

from ..options import JsonOpt
from ..output import State, cell, emit_json, out_console, show_line


def _no_passphrase() -> bytes | None:
    return None


def run_demo(
    home: Path, channels: list[str] | None = None, narrate: bool = False
) -> dict[str, Any]:
    registry = default_registry()
    store = Keystore(home, registry)
    steps: list[dict[str, Any]] = []
    identities = {}
    for name, alg in (("alice", "ed25519"), ("alice-nostr", "nostr")):
        record = store.create(name, alg, None)
        identities[name] = record.key_id
        steps.append({"step": "identity", "name": name, "alg": alg, "key_id": record.key_id})
    ed = store.signer("alice", _no_passphrase)
    nostr = store.signer("alice-nostr", _no_passphrase)
    claims = [
        create_claim(ed, "GitHub:Alice", expires_in=timedelta(days=365), registry=registry),
        create_claim(ed, "dns:alice.example.org", registry=registry),
        create_claim(nostr, "mastodon:@alice@social.example", registry=registry),
        create_claim(ed, f"nostr:{nostr.key_id.split(':', 1)[1]}", registry=registry),
    ]
    results = []
    for claim in claims:
        for enc in registry.encodings():
            text = enc.encode(claim)
            decoded = decode_any(text, registry)[0]
            check = check_claim(decoded, registry=registry)
            results.append(
                {
                    "subject": claim.payload["subject"],
                    "signed_by": claim.signature.alg,
                    "encoding": enc.name,
                    "chars": len(text),
                    "status": check.status.value,
                    "same_id": decoded.id == claim.id,
                }
            )
    tampered_payload = {**claims[0].payload, "subject": "github:mallory"}
    tampered = SignedObject(claims[0].kind, tampered_payload, claims[0].signature)
    old = create_claim(
        ed, "github:alice", created_at=now() - timedelta(days=400), expires_in=timedelta(days=365)
    )
    negatives = [
        {
            "case": "subject changed after signing",
            "status": check_claim(tampered, registry=registry).status.value,
            "expected": Status.INVALID.value,
        },
        {
            "case": "claim past its expires_at",
            "status": check_claim(old, registry=registry).status.value,
            "expected": Status.EXPIRED.value,
        },
    ]
    ok = all(r["status"] == "valid" and r["same_id"] for r in results) and all(
        n["status"] == n["expected"] for n in negatives
    )
    report = {
        "ok": ok,
        "home": str(home),
        "identities": identities,
        "claims": results,
        "negatives": negatives,
        "sample": {
            "compact": registry.encoding("compact").encode(claims[0]),
            "dns": registry.encoding("dns").encode(claims[1]),
        },
    }
    if narrate:
        _print(report)
    if channels:
        network = _run_network(store, ed, nostr, channels, registry, narrate)
        report["network"] = network
        report["ok"] = report["ok"] and network["ok"]
    return report


def _short(subject: str) -> str:
    """A subject short enough for one line (nostr keys are 64 hex digits)."""
    return subject if len(subject) <= 28 else f"{subject[:17]}…{subject[-6:]}"


def _run_network(
    store: Keystore, ed, nostr, names: list[str], registry, narrate: bool
) -> dict[str, Any]:
    import asyncio
    import contextlib

    from ..demo_network import (
        DEMO_INSTALL,
        DemoExtraMissing,
        missing_reason,
        publish_and_verify,
        share_on_server,
        start_channels,
        start_sig_server,
        verify_state,
    )

    say = show_line if narrate else (lambda *_a, **_k: None)
    say("")
    say(("KEZ network demo", "bold"), "  (local servers on 127.0.0.1, real protocols, no accounts)")
    say("")
    with contextlib.ExitStack() as stack:
        started, skipped = start_channels(
            stack, names, nostr, registry, on_start=lambda c: say(f"  started {c.server}")
        )
        for skip in skipped:
            say("  ", (f"skipped {skip['channel']}", "yellow"), f": {skip['reason']}")
        if not started and skipped and all("install" in s for s in skipped):
            missing = ", ".join(dict.fromkeys(s["missing"] for s in skipped))
            raise DemoExtraMissing(
                f"kez demo: no local server could start (missing modules: {missing})",
                hint=f"{DEMO_INSTALL}  (or run `kez demo --offline`)",
            )
        if not started:
            say("")
            say(
                ("no channel could be started", "bold red"),
                ": install a channel plugin, or name one with --channels",
            )
            return {
                "ok": False,
                "published": [],
                "verified": [],
                "skipped": skipped,
                "server": None,
            }
        say("")
        published, report = asyncio.run(
            publish_and_verify(
                store,
                "alice",
                ed,
                started,
                registry,
                on_published=lambda c, p: say(
                    "  ",
                    ("published", "green"),
                    f" {_short(p.subject):<28} seqno {p.seqno}  ",
                    (str(p.location), "dim"),
                ),
            )
        )
        rows = [
            {
                "channel": p.channel,
                "subject": p.check.subject,
                "status": p.check.status.value,
                "reason": p.check.reason,
                "source": p.check.source,
            }
            for p in report.proofs
        ]
        ok = (
            bool(started)
            and report.ok
            and all(r["status"] == "valid" for r in rows)
            and len(rows) == len(started)
        )
        say("")
        say(
            f"  verify {report.identity_id}: chain {report.chain_status.value}, {report.length} links"
        )
        for row in rows:
            colour = "green" if row["status"] == "valid" else "red"
            say(
                "  ",
                (f"{row['status']:<8}", colour),
                f" {_short(row['subject']):<28} ",
                (str(row["source"]), "dim"),
            )
        server_part = None
        try:
            sig_server = start_sig_server(stack, registry)
        except ImportError as exc:
            skipped.append(
                {
                    "channel": "kez-server",
                    "reason": missing_reason(exc),
                    "missing": exc.name or str(exc),
                    "install": DEMO_INSTALL,
                }
            )
        else:
            say("")
            say(f"  started {sig_server.description}")
            shared = asyncio.run(share_on_server(store, "alice", ed, sig_server, registry))
            say("  ", ("pushed", "green"), f" the chain: {shared['pushed']['message']}")
            say(
                "  ",
                ("registered", "green"),
                f" {shared['registered']['fqhn']} → {shared['registered']['primary']}",
            )
            say("  ", (f"its sigchain: {shared['lookup']['sigchain_url']}", "dim"))
            again = asyncio.run(verify_state(shared.pop("state").state, started, registry))
            served = shared["served_chain"]
            server_part = {
                **shared,
                "verified_from_server": {
                    "ok": again.ok,
                    "counts": again.counts(),
                    "identity_id": again.identity_id,
                },
            }
            server_ok = (
                again.ok and served["same_as_local"] and served["identity_id"] == report.identity_id
            )
            ok = ok and server_ok
            say(
                f"  verify {shared['lookup']['fqhn']} (chain from the server, every proof fetched again): ",
                ("ok", "green") if server_ok else ("FAILED", "red"),
                f" ({', '.join(f'{n} {status}' for status, n in again.counts().items())})",
            )
            from ..demo_messaging import run_messaging

            say("")
            say(
                ("messaging", "bold"),
                f"  alice → bob@{sig_server.name} over each transport, acks back",
            )
            messaging = run_messaging(stack, store, sig_server, registry, say)
            server_part["messaging"] = messaging
            ok = ok and messaging["ok"]
    say("")
    say(("every channel verified" if ok else "SOMETHING FAILED", "bold"))
    return {
        "ok": ok,
        "identity_id": report.identity_id,
        "chain_status": report.chain_status.value,
        "published": [p.to_json() for p in published],
        "verified": rows,
        "skipped": skipped,
        "server": server_part,
    }


def demo(
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Keystore folder to use (default: a temporary one)."),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Only the offline part: no local servers are started.")
    ] = False,
    channels: Annotated[
        str,
        typer.Option(
            "--channels",
            help="Comma-separated channels for the network part (default: every channel whose plugin offers a local server).",
        ),
    ] = "",
    json_: JsonOpt = False,
) -> None:
    """Run the end-to-end demo: identities, claims in every encoding, then publish and verify on local servers."""
    State.json_mode = json_
    names = [] if offline else [n.strip() for n in channels.split(",") if n.strip()]
    if not offline and not names:
        from ..demo_network import channel_names

        names = channel_names(default_registry())
    if home is None:
        with tempfile.TemporaryDirectory(prefix="kez-demo-") as tmp:
            report = run_demo(Path(tmp), names, narrate=not json_)
    else:
        report = run_demo(home, names, narrate=not json_)
    if json_:
        emit_json(report)
    if not report["ok"]:
        raise typer.Exit(1)


def _print(report: dict[str, Any]) -> None:
    from rich.table import Table

    show_line(("KEZ offline demo", "bold"), "  (no network, throwaway keystore)")
    show_line("")
    for name, key_id in report["identities"].items():
        show_line("  identity ", (name, "bold"), f": {key_id}")
    table = Table("subject", "signature", "encoding", "chars", "status", box=None)
    for row in report["claims"]:
        colour = "green" if row["status"] == "valid" else "red"
        table.add_row(
            cell(row["subject"]),
            cell(row["signed_by"]),
            cell(row["encoding"]),
            cell(row["chars"]),
            cell(row["status"], colour),
        )
    out_console.print()
    out_console.print(table)
    out_console.print()
    for neg in report["negatives"]:
        mark = ("as expected", "green") if neg["status"] == neg["expected"] else ("WRONG", "red")
        show_line(f"  {neg['case']}: ", (neg["status"], "bold"), " ", mark)
    show_line("")
    show_line(("the github claim, compact form:", "dim"))
    show_line(report["sample"]["compact"])
    show_line(("the dns claim as a zone-file line:", "dim"))
    show_line(report["sample"]["dns"])
    show_line("")
    show_line(("offline checks passed" if report["ok"] else "SOMETHING FAILED", "bold"))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
