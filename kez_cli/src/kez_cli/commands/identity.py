"""`kez identity …`: create, list, show, export and import identities."""

from __future__ import annotations

from typing import Annotated

import typer

from kez_core import nip19
from kez_core.keystore import Keystore, signer_from_text
from kez_core.registry import default_registry

from .. import passphrase
from ..io import read_input, write_output
from ..options import JsonOpt
from ..output import State, cell, emit_json, emit_text, note, out_console, show_line, warn


def _store() -> Keystore:
    return Keystore(registry=default_registry())


def _public_facts(store: Keystore, name: str | None) -> dict[str, object]:
    record = store.get(name)
    facts = record.to_public_dict()
    facts["default"] = store.default_name() == record.name
    facts["path"] = record.path
    if record.alg == "nostr":
        facts["npub"] = nip19.encode("npub", bytes.fromhex(record.key_id.split(":", 1)[1]))
    return facts


def new(
    alg: Annotated[
        str, typer.Option("--alg", help="Key algorithm: ed25519 or nostr (BIP-340).")
    ] = "ed25519",
    name: Annotated[
        str, typer.Option("--name", help="Name of the identity in the keystore.")
    ] = "default",
    no_passphrase: Annotated[
        bool, typer.Option("--no-passphrase", help="Store the key unencrypted without asking.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Create a new identity and print its primary key id."""
    State.json_mode = json_
    store = _store()
    store.registry.key_algorithm(alg)  # unknown alg fails before any prompt
    secret_passphrase = passphrase.for_new_key(no_passphrase=no_passphrase, where=str(store.home))
    record = store.create(name, alg, secret_passphrase)
    if json_:
        emit_json(_public_facts(store, record.name))
    else:
        emit_text(record.key_id)


def list_(json_: JsonOpt = False) -> None:
    """List the identities in the keystore."""
    State.json_mode = json_
    store = _store()
    records, broken = store.scan()
    for problem in broken:  # a damaged identity is named; the others still list
        warn(f"{problem.message} ({problem.hint})")
    default = store.default_name()
    if json_:
        emit_json([{**r.to_public_dict(), "default": r.name == default} for r in records])
        return
    if not records:
        note(f"no identities in {store.home}; create one with `kez identity new`")
        return
    from rich.table import Table

    table = Table("", "name", "key id", "created", "encrypted", box=None)
    for r in records:
        table.add_row(
            *(
                cell(v)
                for v in (
                    "*" if r.name == default else "",
                    r.name,
                    r.key_id,
                    r.created_at,
                    "yes" if r.encrypted else "no",
                )
            )
        )
    out_console.print(table)


def show(
    name: Annotated[
        str | None, typer.Argument(help="Identity name (default identity if omitted).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Show an identity's public facts."""
    State.json_mode = json_
    facts = _public_facts(_store(), name)
    if json_:
        emit_json(facts)
        return
    for key, value in facts.items():
        show_line((f"{key:>10}", "bold"), f"  {value}")


def set_default(
    name: Annotated[str, typer.Argument(help="Identity to use when --identity is not given.")],
    json_: JsonOpt = False,
) -> None:
    """Choose the default identity."""
    State.json_mode = json_
    store = _store()
    store.set_default(name)
    if json_:
        emit_json(_public_facts(store, name))
    else:
        note(f"default identity is now {name!r}")


def export(
    name: Annotated[
        str | None, typer.Argument(help="Identity name (default identity if omitted).")
    ] = None,
    form: Annotated[
        str, typer.Option("--format", help="pem, hex, nsec (nostr) or ncryptsec (nostr, NIP-49).")
    ] = "pem",
    public: Annotated[
        bool, typer.Option("--public", help="Export the public key id only.")
    ] = False,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Write to FILE (mode 0600).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Export an identity's secret key (or, with --public, its key id)."""
    State.json_mode = json_
    store = _store()
    record = store.get(name)
    if public:
        text = record.key_id
    else:
        unlock = passphrase.provider(f"identity {record.name!r}")
        # PEM keeps the stored protection; ncryptsec needs a password to seal with.
        seal = unlock() if (form == "ncryptsec" or (form == "pem" and record.encrypted)) else None
        if form == "ncryptsec" and not seal:
            seal = passphrase.for_new_key(no_passphrase=False, where="the ncryptsec string")
        text = store.export_secret(record.name, form, unlock, seal)
        if output in (None, "-") and not json_:
            note(f"printing the SECRET key of {record.name!r}; keep it private")
    if json_:
        emit_json(
            {
                "name": record.name,
                "key_id": record.key_id,
                "format": "key_id" if public else form,
                "value": text,
            }
        )
    else:
        write_output(text, output, 0o644 if public else 0o600)


def import_(
    source: Annotated[
        str,
        typer.Argument(help="FILE holding the key (PEM, nsec, ncryptsec, hex), or - for stdin."),
    ],
    name: Annotated[
        str, typer.Option("--name", help="Name for the imported identity.")
    ] = "default",
    alg: Annotated[
        str | None, typer.Option("--alg", help="Algorithm of a hex secret (ed25519 or nostr).")
    ] = None,
    no_passphrase: Annotated[
        bool, typer.Option("--no-passphrase", help="Store the key unencrypted without asking.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Import a secret key as a new identity and print its key id."""
    State.json_mode = json_
    store = _store()
    text = read_input(source)
    signer = signer_from_text(
        text, alg=alg, passphrase=passphrase.provider("the imported key"), registry=store.registry
    )
    secret_passphrase = passphrase.for_new_key(no_passphrase=no_passphrase, where=str(store.home))
    record = store.add(name, signer, secret_passphrase)
    if json_:
        emit_json(_public_facts(store, record.name))
    else:
        emit_text(record.key_id)


def register(main_app: typer.Typer) -> None:
    """Add `kez identity` to a freshly built root app (a new group each time: `build_app`
    runs once per in-process `main()`, and a shared group would collect duplicates)."""
    app = typer.Typer(
        help="Create, list, show, export and import identities (your keys).", no_args_is_help=True
    )
    app.command("new")(new)
    app.command("list")(list_)
    app.command("show")(show)
    app.command("default")(set_default)
    app.command("export")(export)
    app.command("import")(import_)
    main_app.add_typer(app, name="identity")
