"""`kez sigchain …`: build, inspect, merge and verify an identity's sigchain.

The local copy of a chain lives at `$KEZ_HOME/chains/<alg>-<hex>.jsonl`,
named by the identity id (the key that signed seqno 1), so it survives
rotations. Every change is validated against the whole chain before it is
written, and written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kez_core import keychange
from kez_core.claim import create_claim
from kez_core.errors import ExitCode, KeyFormatError, StoreError
from kez_core.keyfiles import private_dir
from kez_core.keys import Signer, normalize_key_id
from kez_core.keystore import IdentityRecord, Keystore, atomic_write, signer_from_text
from kez_core.registry import default_registry
from kez_core.sigchain import (
    chain_verdict,
    ChainState,
    MergeResult,
    SigchainBuilder,
    append_links,
    claim_statuses,
    continue_chain,
    merge_copies,
    read_chain_lines,
    write_chain,
)
from kez_core.status import to_json
from kez_core.timefmt import parse_duration
from kez_core.sigserver_client import UsageError, configured_servers, server_copies

from .. import passphrase
from ..io import read_chain_source, read_input, write_output
from ..options import IdentityOpt, JsonOpt, SigServerOpt, TimeoutOpt
from ..output import State, emit_json, emit_text, note, show_line, warn


# ------------------------------------------------------------------ helpers


def _store() -> Keystore:
    return Keystore(registry=default_registry())


def _chain_lines(path: Path) -> list[bytes]:
    return read_chain_lines(path, missing_ok=True)


def _builder(store: Keystore, path: Path) -> SigchainBuilder:
    """A builder continuing the chain at `path` (a new chain when it has no links yet)."""
    return continue_chain(_chain_lines(path), store.registry)


def _local(store: Keystore, identity: str | None) -> tuple[IdentityRecord, Path, SigchainBuilder]:
    record = store.get(identity)
    path = store.chain_path(record.identity_id)
    if not path.exists():
        raise StoreError(
            f"identity {record.name!r} has no sigchain yet",
            hint="start one with `kez sigchain init`",
        )
    return record, path, _builder(store, path)


def _primary(store: Keystore, record: IdentityRecord) -> Signer:
    return store.signer(record.name, passphrase.provider(f"identity {record.name!r}"))


def _key_from_file(source: str, store: Keystore, label: str) -> Signer:
    text = read_input(source)
    return signer_from_text(
        text, alg=None, passphrase=passphrase.provider(label), registry=store.registry
    )


def _state_dict(state: ChainState | None, merged: MergeResult | None = None) -> dict[str, Any]:
    if state is None:
        return {"identity_id": None, "length": 0}
    statuses = claim_statuses(state, fork=merged.fork if merged else None)
    return {
        "identity_id": state.identity_id,
        "current_primary": state.current_primary,
        "length": state.length,
        "head": state.head,
        "devices": [{"key": k, "name": n} for k, n in state.devices.items()],
        "recovery_keys": sorted(state.recovery_keys),
        "retired_primaries": [
            {"key": r.key, "seqno": r.seqno, "rotated_at": r.rotated_at, "successor": r.successor}
            for r in state.retired.values()
        ],
        "inbox_keys": [
            {"key": k.key, "device": k.device, "expires_at": k.expires_at}
            for k in state.inbox_keys.values()
        ],
        "claims": [to_json(check) for check in statuses.values()],
    }


def _print_state(data: dict[str, Any]) -> None:
    if not data.get("identity_id"):
        show_line("no links yet")
        return
    show_line(("identity", "bold"), f"  {data['identity_id']}  ({data['length']} links)")
    show_line(("primary", "bold"), f"   {data['current_primary']}")
    for device in data["devices"]:
        show_line(("device", "bold"), f"    {device['key']}  ({device['name']})")
    for key in data["recovery_keys"]:
        show_line(("recovery", "bold"), f"  {key}")
    for retired in data["retired_primaries"]:
        show_line((f"retired   {retired['key']} at seqno {retired['seqno']}", "dim"))
    colours = {"valid": "green", "revoked": "yellow", "expired": "yellow", "superseded": "yellow"}
    for claim in data["claims"]:
        colour = colours.get(claim["status"], "red")
        show_line(
            (f"{claim['status']:<10}", colour),
            f"  {claim['subject']}  ",
            (str(claim["claim_id"]), "dim"),
        )
        if claim["status"] != "valid":
            show_line("            ", (str(claim["reason"]), "dim"))


def _done(
    link, state: ChainState, json_: bool, message: str, extra: dict[str, Any] | None = None
) -> None:
    if json_:
        emit_json(
            {
                "seqno": link.seqno,
                "link_id": link.id,
                "op": link.op,
                "identity_id": state.identity_id,
                **(extra or {}),
            }
        )
    else:
        note(message)


# ------------------------------------------------------------------ commands


def init(
    identity: IdentityOpt = None,
    recovery_key: Annotated[
        str | None,
        typer.Option(
            "--recovery-key", help="Add this recovery key (a key id, or a key file) as seqno 1."
        ),
    ] = None,
    new_recovery: Annotated[
        str | None,
        typer.Option(
            "--new-recovery", help="Generate a recovery key, save it to FILE (0600), add it."
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Start the sigchain of an identity (optionally with a recovery key as its first link)."""
    State.json_mode = json_
    store = _store()
    record = store.get(identity)
    path = store.chain_path(record.identity_id)
    if path.exists():
        raise StoreError(f"identity {record.name!r} already has a sigchain at {path}")
    private_dir(path.parent)
    extra: dict[str, Any] = {"path": str(path)}
    if recovery_key or new_recovery:
        # seqno 1 is the add_recovery link; the chain file appears with it, or not at all
        builder = _builder(store, path)
        extra["recovery_key"] = _add_recovery(
            store, record, recovery_key, new_recovery, path, builder
        )
    else:
        atomic_write(path, b"", 0o644)
    if json_:
        emit_json({"identity_id": record.identity_id, **extra})
    else:
        emit_text(record.identity_id)
        note(f"sigchain started at {path}")


def _add_recovery(
    store: Keystore,
    record: IdentityRecord,
    key: str | None,
    generate: str | None,
    path: Path,
    builder: SigchainBuilder,
) -> str:
    """Add a recovery key (a key id, a key file's key, or a new one saved to GENERATE) via keychange."""
    primary = lambda: _primary(store, record)  # noqa: E731
    if generate:
        target = _stdout_sink if generate == "-" else Path(generate)
        seal = lambda: passphrase.for_new_key(no_passphrase=False, where=generate)  # noqa: E731
        change = keychange.add_recovery(
            store, record.name, path, builder, primary=primary, save_to=target, seal=seal
        )
        if generate != "-":
            note(
                f"recovery key saved to {generate}: keep it offline; "
                "it can rotate your primary if you lose it"
            )
        return change.key_id
    if key and (":" in key or key.startswith("npub1")) and not Path(key).exists():
        key_id = normalize_key_id(key, store.registry)
    elif key:
        key_id = _key_from_file(key, store, "the recovery key").key_id
    else:
        raise KeyFormatError("give a recovery key id, --key-file FILE or --generate FILE")
    return keychange.add_recovery(
        store, record.name, path, builder, primary=primary, key=key_id
    ).key_id


def _stdout_sink(pem: bytes) -> None:
    write_output(pem.decode("ascii"), None)


def add(
    subject: Annotated[str, typer.Argument(help="channel:handle to claim, e.g. github:alice.")],
    expires: Annotated[
        str | None, typer.Option("--expires", help="Validity: 90d, 1y, … Default: never.")
    ] = None,
    form: Annotated[
        str, typer.Option("--format", "-f", help="Encoding of the printed claim.")
    ] = "compact",
    identity: IdentityOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Sign a claim on SUBJECT and add it to the sigchain; prints the claim to publish."""
    State.json_mode = json_
    lifetime = parse_duration(expires) if expires else None  # bad input fails before any prompt
    store = _store()
    record, path, builder = _local(store, identity)
    encoding = store.registry.encoding(form)
    primary = _primary(store, record)
    claim = create_claim(primary, subject, expires_in=lifetime, registry=store.registry)
    link = builder.claim(primary, claim)
    state = append_links(path, [link], registry=store.registry)
    text = encoding.encode(claim)
    if json_:
        emit_json(
            {
                "seqno": link.seqno,
                "link_id": link.id,
                "claim_id": claim.id,
                "subject": claim.payload["subject"],
                "identity_id": state.identity_id,
                "encoded": text,
            }
        )
    else:
        write_output(text, None)
        note(
            f"claim {claim.id} added at seqno {link.seqno}; publish the text above on {claim.payload['subject']}"
        )


def revoke(
    claim_id: Annotated[
        str, typer.Argument(help="Id of the claim to revoke (see `kez sigchain show`).")
    ],
    reason: Annotated[
        str, typer.Option("--reason", help="Why, in words (kept in the chain).")
    ] = "",
    identity: IdentityOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Revoke a claim: from now on every copy of it verifies as `revoked` (see also `kez claim revoke`)."""
    from kez_core.revocation import revoke_claims

    State.json_mode = json_
    if ":" in claim_id:
        raise UsageError(
            "`kez sigchain revoke` takes a claim id; to revoke by subject use `kez claim revoke`"
        )
    store = _store()
    record = store.get(identity)
    done = revoke_claims(
        store, record.name, claim_id, reason=reason, signer=lambda: _primary(store, record)
    )
    claim = done.claims[0]
    if json_:
        emit_json(
            {
                "seqno": claim.seqno,
                "link_id": claim.link_id,
                "op": "revoke",
                "identity_id": done.identity_id,
                "claim_id": claim.claim_id,
            }
        )
    else:
        note(f"claim {claim.claim_id} revoked at seqno {claim.seqno}; {done.hint}")


def rotate(
    new_key: Annotated[
        str | None, typer.Option("--new-key", help="FILE holding the new primary's secret key.")
    ] = None,
    generate: Annotated[
        bool, typer.Option("--generate", help="Generate the new primary key.")
    ] = False,
    with_recovery: Annotated[
        str | None,
        typer.Option(
            "--with-recovery", help="Sign with this recovery KEYFILE (when the primary is lost)."
        ),
    ] = None,
    no_passphrase: Annotated[
        bool, typer.Option("--no-passphrase", help="Store the new key unencrypted.")
    ] = False,
    identity: IdentityOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Replace the primary key; the identity id stays. A recovery key can do it when the primary is lost."""
    State.json_mode = json_
    if bool(new_key) == bool(generate):
        raise KeyFormatError("give exactly one of --new-key FILE or --generate")
    store = _store()
    record, path, builder = _local(store, identity)
    if with_recovery:
        signer = lambda: _key_from_file(with_recovery, store, "the recovery key")  # noqa: E731
    else:
        signer = lambda: _primary(store, record)  # noqa: E731
    if new_key:
        successor = lambda: _key_from_file(new_key, store, "the new key")  # noqa: E731
    else:
        successor = lambda: Signer.generate(record.alg, store.registry)  # noqa: E731
    change = keychange.rotate(
        store,
        record.name,
        path,
        builder,
        signer=signer,
        successor=successor,
        seal=lambda: passphrase.for_new_key(no_passphrase=no_passphrase, where=record.path),
    )
    _done(
        change.link,
        change.state,
        json_,
        f"primary of {record.name!r} is now {change.key_id} (seqno {change.link.seqno})",
        {"new_primary": change.key_id, "signed_by": change.signed_by},
    )


def add_device(
    name: Annotated[str, typer.Option("--name", help="A name for the device, e.g. laptop.")],
    device_identity: Annotated[
        str | None,
        typer.Option(
            "--device-identity", help="Use this keystore identity's key as the device key."
        ),
    ] = None,
    device_key: Annotated[
        str | None, typer.Option("--device-key", help="FILE holding the device's secret key.")
    ] = None,
    identity: IdentityOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Add a device key (it signs its acceptance, so only a key you hold can be added)."""
    State.json_mode = json_
    if bool(device_identity) == bool(device_key):
        raise KeyFormatError("give exactly one of --device-identity NAME or --device-key FILE")
    store = _store()
    record, path, builder = _local(store, identity)
    if device_identity:
        device = store.signer(device_identity, passphrase.provider(f"identity {device_identity!r}"))
    else:
        device = _key_from_file(device_key, store, "the device key")
    link = builder.add_device(_primary(store, record), device, name)
    state = append_links(path, [link], registry=store.registry)
    _done(
        link,
        state,
        json_,
        f"device {device.key_id} ({name}) added at seqno {link.seqno}",
        {"device": device.key_id},
    )


def join(
    identity_id: Annotated[
        str, typer.Argument(help="The identity this keystore identity's key is a device of.")
    ],
    identity: IdentityOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Make this keystore identity a device of IDENTITY_ID: it then publishes its own inbox key
    (`kez sigchain add-inbox`, signed by the device), receives and sends as that identity.

    First, on the primary: `kez sigchain add-device --device-key FILE`, then export the chain;
    here: `kez sigchain import CHAIN_FILE`. The chain must list this key as a current device.
    """
    from kez_core.devices import join_identity

    State.json_mode = json_
    store = _store()
    record = join_identity(
        store, store.get(identity).name, normalize_key_id(identity_id, store.registry)
    )
    if json_:
        emit_json(
            {"identity": record.name, "device": record.key_id, "identity_id": record.identity_id}
        )
    else:
        note(f"{record.name!r} ({record.key_id}) is now a device of {record.identity_id}")
        note("publish its own inbox key: `kez sigchain add-inbox`, then share the chain")


def remove_device(
    device: Annotated[str, typer.Argument(help="Key id of the device to remove.")],
    identity: IdentityOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Remove a device key: it signs nothing further for this identity."""
    State.json_mode = json_
    store = _store()
    record, path, builder = _local(store, identity)
    link = builder.remove_device(_primary(store, record), normalize_key_id(device, store.registry))
    state = append_links(path, [link], registry=store.registry)
    _done(link, state, json_, f"device {device} removed at seqno {link.seqno}")


def add_recovery(
    key: Annotated[str | None, typer.Argument(help="Recovery key id (alg:hex or npub).")] = None,
    key_file: Annotated[
        str | None, typer.Option("--key-file", help="FILE holding the recovery secret key.")
    ] = None,
    generate: Annotated[
        str | None, typer.Option("--generate", help="Generate one and save it to FILE (0600).")
    ] = None,
    identity: IdentityOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Add a recovery key: it can rotate the primary when the primary is lost."""
    State.json_mode = json_
    if sum(bool(x) for x in (key, key_file, generate)) != 1:
        raise KeyFormatError("give exactly one of KEY, --key-file FILE or --generate FILE")
    store = _store()
    record, path, builder = _local(store, identity)
    key_id = _add_recovery(store, record, key or key_file, generate, path, builder)
    if json_:
        emit_json({"recovery_key": key_id, "identity_id": record.identity_id})
    else:
        note(f"recovery key {key_id} added")


def add_inbox(
    expires_in: Annotated[
        str,
        typer.Option("--expires-in", help="How long senders may use the key: 7d (default), 2w, …"),
    ] = "7d",
    identity: IdentityOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Publish a fresh X25519 inbox key (rotate it weekly; messages are sealed to it).

    The secret is stored first, in the identity's folder, encrypted with the
    identity's passphrase when its key is; then the link is appended.
    """
    State.json_mode = json_
    lifetime = parse_duration(expires_in)
    store = _store()
    record, path, builder = _local(store, identity)
    # one provider for the key and the inbox secret: a terminal user is asked once
    password = passphrase.provider(f"identity {record.name!r}")
    change = keychange.add_inbox(
        store,
        record.name,
        path,
        builder,
        signer=lambda: store.signer(record.name, password),
        passphrase=password,
        lifetime=lifetime,
    )
    link, state, inbox_key = change.link, change.state, change.key_id
    expires = link.body["expires_at"]
    _done(
        link,
        state,
        json_,
        f"inbox key {inbox_key} added at seqno {link.seqno}, expires {expires}",
        {"inbox_key": inbox_key, "expires_at": expires},
    )


def show(identity: IdentityOpt = None, json_: JsonOpt = False) -> None:
    """Show the chain: identity id, primary, devices, recovery keys, claims and their status."""
    State.json_mode = json_
    store = _store()
    _, _, builder = _local(store, identity)
    data = _state_dict(builder.state)
    if json_:
        emit_json(data)
    else:
        _print_state(data)


def export(
    output: Annotated[str | None, typer.Argument(help="FILE to write (default: stdout).")] = None,
    identity: IdentityOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Write the chain as canonical JSON Lines (byte-stable: export → import → export is identical)."""
    State.json_mode = json_
    store = _store()
    record = store.get(identity)
    path = store.chain_path(record.identity_id)
    merged = merge_copies([_chain_lines(path)], registry=store.registry)
    # the valid links only: a local chain broken at some link (e.g. one dated in the
    # future) exports the links before it, which `import` then writes back (docs/sigchain.md §6)
    broken = merged.copies[0].error if merged.copies else None
    if broken is not None:
        warn(
            f"the local chain is valid up to seqno {len(merged.lines)}; left out from there: {broken.message}"
        )
    data = b"".join(merged.lines)
    if json_:
        emit_json(
            {
                "identity_id": record.identity_id,
                "length": len(merged.lines),
                "jsonl": data.decode("utf-8"),
            }
        )
    elif output in (None, "-"):
        import sys

        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        atomic_write(Path(output), data, 0o644)


def _read_copies(files: list[str]) -> list[list[bytes]]:
    return [read_chain_source(name) for name in files]


def import_(
    files: Annotated[
        list[str], typer.Argument(help="Chain copies (JSON Lines) to merge into the local copy.")
    ],
    json_: JsonOpt = False,
) -> None:
    """Merge copies of a chain into the local copy (a longer valid copy extends a shorter one)."""
    State.json_mode = json_
    store = _store()
    copies = _read_copies(files)
    first = merge_copies(copies, registry=store.registry)
    # a damaged file is refused, not cut at its first bad line; a fork is refused too
    broken = first if first.state is None or _errors(first) else None
    if broken is None:
        local = store.chain_path(first.state.identity_id)
        private_dir(local.parent)
        merged = merge_copies([_chain_lines(local), *copies], registry=store.registry)
        broken = merged if merged.fork is not None else None
    if broken is not None:  # nothing is written
        if json_:  # one JSON document, as for every command
            emit_json(
                {
                    "identity_id": broken.identity_id,
                    "status": "fork" if broken.fork is not None else "invalid",
                    "errors": _errors(broken)
                    or [{"error": "empty", "message": "no links in the input"}],
                }
            )
        _report_broken(broken, json_)
        raise typer.Exit(ExitCode.NOT_VALID)
    state = write_chain(local, merged.lines, registry=store.registry)
    if json_:
        emit_json({"identity_id": state.identity_id, "length": state.length, "path": str(local)})
    else:
        note(f"{state.identity_id}: {state.length} links in {local}")


def _errors(merged: MergeResult) -> list[dict[str, Any]]:
    return [
        {"copy": c.index, "valid_links": c.valid_links, **c.error.to_dict()}
        for c in merged.copies
        if c.error is not None
    ]


def _report_broken(merged: MergeResult, json_: bool) -> None:
    if json_:
        return
    if merged.fork is not None:
        show_line(("fork", "red bold"), f"  {merged.fork.reason}")
    overridden = (
        merged.status.value == "valid"
    )  # a damaged copy the other copies' valid links override
    for error in _errors(merged):
        label = ("damaged", "yellow bold") if overridden else ("invalid", "red bold")
        show_line(label, f"  copy {error['copy'] + 1}: {error['message']}")


def verify(
    files: Annotated[
        list[str], typer.Argument(help="One or more copies (JSON Lines) of one chain.")
    ],
    sig_server: SigServerOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Validate a chain from one or more copies. Exit 0 when the chain is valid, 1 when broken or forked.

    With --sig-server (or KEZ_SIG_SERVERS) each server's copy of the same
    identity's chain is merged in too, so a server that holds a conflicting
    link shows up as a fork.
    """
    State.json_mode = json_
    store = _store()
    copies = _read_copies(files)
    servers = configured_servers(sig_server or [])
    server_notes: list[dict[str, Any]] = []
    if servers:
        identity_id = merge_copies(copies, registry=store.registry).identity_id
        if identity_id is not None:
            from_servers, server_notes = server_copies(
                servers, identity_id, timeout, on_unreachable=None if json_ else note
            )
            copies += from_servers
    merged = merge_copies(copies, registry=store.registry)
    errors = _errors(merged)
    status = chain_verdict(merged).status.value  # the one rule (docs/sigchain.md §8)
    data = {
        "status": status,
        **_state_dict(merged.state, merged),
        "errors": errors,
        "servers": server_notes,
        "fork": None
        if merged.fork is None
        else {"seqno": merged.fork.seqno, "link_ids": list(merged.fork.link_ids)},
    }
    if merged.state is None and not errors:
        data["errors"] = [{"error": "empty", "message": "no links in the input"}]
    if json_:
        emit_json(data)
    else:
        if status == "valid":
            show_line(("valid chain", "green bold"), f"  {data['length']} links")
        elif status == "not_found":
            show_line(("no chain", "red bold"), "  no links in the input")
        _report_broken(merged, False)
        _print_state(data)
    if status != "valid":
        raise typer.Exit(ExitCode.NOT_VALID)


# ------------------------------------------------------------------ servers


def publish(
    sig_server: SigServerOpt = None,
    identity: IdentityOpt = None,
    timeout: TimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Push the chain to every configured kez-server (--sig-server, KEZ_SIG_SERVERS).

    The whole chain is sent each time; a server stores the links that extend
    its copy, so publishing again is harmless. Exit 0 when every server holds
    the chain, 1 when one holds a conflicting link (a fork: both link ids are
    shown), 3 when one refused it, 5 when one could not be reached.
    """
    import asyncio

    from kez_core.sigserver_client import push_all

    State.json_mode = json_
    store = _store()
    record, path, _builder = _local(store, identity)
    servers = configured_servers(sig_server or [])
    if not servers:
        raise UsageError(
            "no kez-server to publish to", hint="pass --sig-server URL or set KEZ_SIG_SERVERS"
        )
    lines = merge_copies([_chain_lines(path)], registry=store.registry).lines
    results = asyncio.run(push_all(servers, record.identity_id, lines, timeout))
    if json_:
        emit_json(
            {
                "identity_id": record.identity_id,
                "length": len(lines),
                "servers": [r.to_json() for r in results],
            }
        )
    else:
        colours = {"ok": "green", "fork": "red", "refused": "red", "unreachable": "magenta"}
        for r in results:
            show_line(
                (f"{r.outcome:<11}", f"{colours[r.outcome]} bold"), f" {r.server}  {r.message}"
            )
            if r.link_ids:
                show_line(f"  {'':<11} conflicting links: {', '.join(r.link_ids)}")
    outcomes = {r.outcome for r in results}
    if "fork" in outcomes:
        raise typer.Exit(ExitCode.NOT_VALID)
    if "refused" in outcomes:
        raise typer.Exit(ExitCode.BAD_INPUT)
    if "unreachable" in outcomes:
        raise typer.Exit(ExitCode.NETWORK)


def pull(
    identity_id: Annotated[
        str | None,
        typer.Argument(help="Identity id to fetch (default: the --identity's own chain)."),
    ] = None,
    sig_server: SigServerOpt = None,
    identity: IdentityOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Fetch a chain from every configured kez-server and merge it into the local copy.

    Server copies are validated like any file: a longer valid copy extends
    the local one; a conflicting link is a fork, reported and not written.
    """
    State.json_mode = json_
    store = _store()
    servers = configured_servers(sig_server or [])
    if not servers:
        raise UsageError(
            "no kez-server to pull from", hint="pass --sig-server URL or set KEZ_SIG_SERVERS"
        )
    target = (
        normalize_key_id(identity_id, store.registry)
        if identity_id
        else store.get(identity).identity_id
    )
    local = store.chain_path(target)
    from_servers, notes = server_copies(
        servers, target, timeout, on_unreachable=None if json_ else note
    )
    if not from_servers:
        raise StoreError(
            f"no configured server holds the chain of {target}",
            hint="check the identity id and --sig-server; unreachable servers are listed above",
        )
    merged = merge_copies([_chain_lines(local), *from_servers], registry=store.registry)
    if merged.fork is not None or merged.state is None:
        if json_:
            emit_json(
                {
                    "identity_id": target,
                    "status": merged.status.value,
                    "errors": _errors(merged),
                    "servers": notes,
                }
            )
        _report_broken(merged, json_)
        raise typer.Exit(ExitCode.NOT_VALID)
    if merged.state.identity_id != target:
        raise StoreError(
            f"the servers sent the chain of {merged.state.identity_id}, not of {target}"
        )
    private_dir(local.parent)
    state = write_chain(local, merged.lines, registry=store.registry)
    if json_:
        emit_json(
            {"identity_id": target, "length": state.length, "path": str(local), "servers": notes}
        )
    else:
        note(f"{target}: {state.length} links in {local}")


def register(main_app: typer.Typer) -> None:
    """Add `kez sigchain` to a freshly built root app (a new group each time: `build_app`
    runs once per in-process `main()`, and a shared group would collect duplicates)."""
    app = typer.Typer(
        help="Build, inspect, merge and verify sigchains (your identity's signed history).",
        no_args_is_help=True,
    )
    app.command("init")(init)
    app.command("add")(add)
    app.command("revoke")(revoke)
    app.command("rotate")(rotate)
    app.command("add-device")(add_device)
    app.command("join")(join)
    app.command("remove-device")(remove_device)
    app.command("add-recovery")(add_recovery)
    app.command("add-inbox")(add_inbox)
    app.command("show")(show)
    app.command("export")(export)
    app.command("import")(import_)
    app.command("verify")(verify)
    app.command("publish")(publish)
    app.command("pull")(pull)
    main_app.add_typer(app, name="sigchain")
