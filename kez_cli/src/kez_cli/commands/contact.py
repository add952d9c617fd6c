"""`kez contact …`: the people this identity writes to, by a name of your choosing.

A contact names an identity (and the handle it was added by, pinned like a
first message would pin it). Messages from identities that are not
contacts are kept apart and marked; a blocked contact's messages are
dropped on arrival. The list lives in the identity's message store
(kez_core.chat), next to its conversations.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from ..channel_options import CONTEXT_SETTINGS
from ..options import HandleServerOpt, IdentityOpt, JsonOpt, TimeoutOpt
from ..output import State, cell, emit_json, note, out_console


def _service(identity: str | None, handle_server: str | None = None, timeout: float = 10.0) -> Any:
    from .message import _local_service

    return _local_service(identity, handle_server, timeout)


NameArg = Annotated[str, typer.Argument(help="The contact's name.")]


ViaOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--via",
        help="Transport(s) for the picture key: nats, nostr, http (default: every configured one).",
    ),
]


def add(
    ctx: typer.Context,
    name: NameArg,
    peer: Annotated[
        str,
        typer.Argument(
            help="A handle (alice@kez.example), identity id, local identity name or chain file."
        ),
    ],
    via: ViaOpt = None,
    handle_server: HandleServerOpt = None,
    identity: IdentityOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Add PEER as contact NAME (a handle is looked up, its chain checked and pinned).

    When you published a scrambled profile picture, the new contact is sent its
    key (a `profile_key` message) through the transports, as `kez message send`
    sends: --via and each transport's flags (e.g. --inbox-server URL).
    """
    from kez_core.profile.sharing import current_key_body

    from ..key_sharing import key_routes, report

    State.json_mode = json_
    service = _service(identity, handle_server, timeout)
    try:
        routes = []
        if (
            current_key_body(service) is not None
        ):  # only then are transports (and the signing key) needed
            routes = key_routes(
                ctx.args, service.keystore, via or [], timeout, service.record, service.signer()
            )
        contact, share = asyncio.run(service.add_contact_sharing(name, peer, routes))
    finally:
        service.close()
    if json_:
        emit_json({**_json(contact), "profile_key": share.to_json() if share is not None else None})
        return
    note(f"added {contact.name}: {contact.identity}")
    if share is not None:
        report([share])


def _json(contact: Any) -> dict[str, Any]:
    return {
        "name": contact.name,
        "identity": contact.identity,
        "handle": contact.handle,
        "blocked": contact.blocked,
        "created_at": contact.created_at,
    }


def list_(identity: IdentityOpt = None, json_: JsonOpt = False) -> None:
    """List contacts."""
    from rich.table import Table

    State.json_mode = json_
    service = _service(identity)
    try:
        contacts = service.contacts()
    finally:
        service.close()
    if json_:
        emit_json([_json(c) for c in contacts])
        return
    if not contacts:
        note("no contacts yet: `kez contact add NAME PEER`")
        return
    table = Table("name", "identity", "handle", "blocked")
    for c in contacts:
        table.add_row(
            cell(c.name, "bold"),
            cell(c.identity),
            cell(c.handle or ""),
            cell("blocked" if c.blocked else ""),
        )
    out_console.print(table)


def rename(
    old: NameArg,
    new: Annotated[str, typer.Argument(help="The new name.")],
    identity: IdentityOpt = None,
) -> None:
    """Rename a contact."""
    service = _service(identity)
    try:
        service.rename_contact(old, new)
    finally:
        service.close()
    note(f"renamed {old} to {new}")


def remove(name: NameArg, identity: IdentityOpt = None) -> None:
    """Remove a contact (its conversation stays; its messages count as from a stranger again)."""
    service = _service(identity)
    try:
        service.remove_contact(name)
    finally:
        service.close()
    note(f"removed {name}")


def block(
    who: Annotated[str, typer.Argument(help="A contact name, or any peer (handle, identity id).")],
    unblock: Annotated[bool, typer.Option("--unblock", help="Take a block back.")] = False,
    handle_server: HandleServerOpt = None,
    identity: IdentityOpt = None,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Block a contact or anyone else: their messages are dropped on arrival (--unblock undoes it)."""
    service = _service(identity, handle_server, timeout)
    try:
        asyncio.run(service.block(who, not unblock))
    finally:
        service.close()
    note(f"{'unblocked' if unblock else 'blocked'} {who}")


def register(main_app: typer.Typer) -> None:
    app = typer.Typer(help="Keep contacts: add, list, rename, remove, block.", no_args_is_help=True)
    app.command("add", context_settings=CONTEXT_SETTINGS)(add)
    app.command("list")(list_)
    app.command("rename")(rename)
    app.command("remove")(remove)
    app.command("block")(block)
    main_app.add_typer(app, name="contact")
