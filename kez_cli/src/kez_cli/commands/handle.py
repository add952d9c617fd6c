"""`kez handle …`: register a handle on a kez-server and look handles up.

A handle (`alice@example.org`) is a name a server hands out for an identity
key; the registration is a signed `handle_registration` object
(`kez.chat.handle_registration`, docs/spec.md "Server API"), so the server
can prove who asked for the name. The handle says where the identity's
sigchain is; `kez verify alice@example.org` checks it like any identity.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from kez_core.keystore import Keystore
from kez_core.registry import default_registry
from kez_core.sigserver_client import (
    RegistrationRefused,
    SigServerError,
    UsageError,
    push_all,
    check_url,
    handle_base_url,
    lookup_handle,
    register_handle,
    registration,
    server_name,
    split_handle,
    valid_handle,
)

from .. import passphrase
from ..options import HandleServerOpt, IdentityOpt, JsonOpt, TimeoutOpt
from ..output import State, emit_json, note, show_line


def _print(data: dict[str, Any], *, heading: bool = True) -> None:
    if heading:
        show_line((str(data.get("fqhn")), "bold"))
    for key in ("primary", "identity", "sigchain_url", "registered_at"):
        if key in data:
            show_line(f"  {key:<14} {data[key]}")


def handle_register(
    handle: Annotated[
        str,
        typer.Argument(
            help="The handle to claim: 3–32 of a-z 0-9 _ -, starting with a letter or digit."
        ),
    ],
    server: Annotated[
        str, typer.Option("--server", help="Base URL of the kez-server, e.g. https://example.org.")
    ],
    server_name_: Annotated[
        str | None,
        typer.Option(
            "--server-name",
            help="The domain the server registers under (default: asked from the server).",
        ),
    ] = None,
    identity: IdentityOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Register HANDLE for your identity's primary key (a signed registration, valid for 5 minutes).

    Your sigchain, when you have one, is pushed to the server first: the
    handle points at it. After `kez sigchain rotate`, run this again with the
    same handle to move it to the new primary key (the server checks the
    rotation in the chain just pushed).
    """
    State.json_mode = json_
    base = check_url(server, "--server")
    handle = handle.strip().lower()
    if not valid_handle(handle):
        raise UsageError(
            f"{handle!r} is not a valid handle",
            hint="3–32 characters of a-z, 0-9, _ and -, starting with a letter or digit",
        )
    registry = default_registry()
    store = Keystore(registry=registry)
    record = store.get(identity)
    signer = store.signer(record.name, passphrase.provider(f"identity {record.name!r}"))
    name = server_name_ or asyncio.run(server_name(base, timeout))
    pushed = _push_own_chain(store, record.identity_id, base, timeout)
    envelope = registration(signer, handle, name, record.identity_id).to_dict()
    data = asyncio.run(register_handle(base, envelope, timeout))
    if json_:
        emit_json({**data, "pushed": pushed})
    else:
        show_line(
            ("moved" if data.get("moved") else "registered", "green bold"),
            " ",
            (str(data.get("fqhn")), "bold"),
        )
        _print(data, heading=False)


def _push_own_chain(
    store: Keystore, identity_id: str, base: str, timeout: float
) -> dict[str, Any] | None:
    """Push the local chain to the server the handle is registered on (None: no chain here)."""
    from kez_core.sigchain import merge_copies

    from kez_core.sigchain import read_chain_lines

    path = store.chain_path(identity_id)
    if not path.exists():
        return None
    lines = merge_copies([read_chain_lines(path)], registry=store.registry).lines
    result = asyncio.run(push_all([base], identity_id, lines, timeout))[0]
    if result.outcome == "unreachable":
        raise SigServerError(
            f"pushing the sigchain first: {result.message}", hint="check --server, or retry later"
        )
    if result.outcome != "ok":
        raise RegistrationRefused(
            f"the server refused the sigchain ({result.outcome}): {result.message}",
            hint="see `kez sigchain verify` for your chain; the handle was not registered",
        )
    if not State.json_mode:
        note(f"sigchain pushed to {base}: {result.message}")
    return result.to_json()


def lookup(
    target: Annotated[str, typer.Argument(help="handle@server, e.g. alice@example.org.")],
    handle_server: HandleServerOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Show what a server says about handle@server: primary key, sigchain URL, registration time."""
    State.json_mode = json_
    parts = split_handle(target.strip().lower())
    if parts is None:
        raise UsageError(f"{target!r} is not handle@server", hint="e.g. alice@example.org")
    handle, server = parts
    data = asyncio.run(
        lookup_handle(handle_base_url(server, handle_server), handle, server, timeout)
    )
    if json_:
        emit_json(data)
    else:
        _print(data)


def register(main_app: typer.Typer) -> None:
    """Add `kez handle` to a freshly built root app (a new group each time: `build_app`
    runs once per in-process `main()`, and a shared group would collect duplicates)."""
    app = typer.Typer(
        help="Register and look up handles (alice@example.org) on a kez-server.",
        no_args_is_help=True,
    )
    app.command("register")(handle_register)
    app.command("lookup")(lookup)
    main_app.add_typer(app, name="handle")
