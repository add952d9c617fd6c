"""`kez chat`: the terminal chat app (Textual), or the same app in a browser tab (`--web`).

This module is imported when `kez chat` runs, never by `kez --help`; it
imports textual only inside the command, after the flags are parsed.
"""

from __future__ import annotations

import shlex
import sys
from typing import Annotated

import typer

from ..channel_options import CONTEXT_SETTINGS, TRANSPORT, options_help
from ..options import HandleServerOpt, IdentityOpt, TimeoutOpt
from kez_core.errors import UsageError
from .message import ViaManyOpt, _routes, _store


def chat(
    ctx: typer.Context,
    via: ViaManyOpt = None,
    handle_server: HandleServerOpt = None,
    identity: IdentityOpt = None,
    timeout: TimeoutOpt = 10.0,
    web: Annotated[
        bool,
        typer.Option("--web", help="Serve the app in a browser tab on 127.0.0.1 (textual-serve)."),
    ] = False,
    port: Annotated[int, typer.Option("--port", help="The --web port.", min=1, max=65535)] = 8000,
    notify: Annotated[
        bool,
        typer.Option(
            "--notify",
            help="A desktop notification (notify-send, else the bell) for a message "
            "in a conversation that is not open.",
        ),
    ] = False,
) -> None:
    """Chat in the terminal: conversations, live delivery states, files, contacts.

    Unlocks the identity once (a passphrase prompt inside the app), then
    receives on every transport given (--via, or every configured one) while
    it runs. Transport plugins add their own flags (see `kez plugins`), e.g.
    --nats-url URL. Press ? or F1 in the app for its keys.
    """
    from kez_core.sigserver_client import ServerDirectory

    if web:
        _serve(port)
        return
    store = _store()
    try:
        routes = _routes(ctx.args, store, via or [], timeout)
    except (
        UsageError
    ):  # no transport configured: the app still opens (history, contacts) and says so
        routes = []
    record = store.get(identity)
    from ..chat_app.app import ChatApp
    from ..chat_app.session import ChatSession

    session = ChatSession(
        store, record, routes, directory=ServerDirectory(handle_server, timeout), timeout=timeout
    )
    from ..chat_app.app import prepare_images

    prepare_images()  # ask the terminal about pictures now: once the app runs, the terminal is its
    ChatApp(session, desktop_notify=notify).run()


def _serve(port: int) -> None:
    """Run `kez chat` with the same arguments (less --web/--port) behind textual-serve."""
    from textual_serve.server import Server

    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if arg == "--web" or arg.startswith("--port="):
            continue
        if arg == "--port":
            skip = True
            continue
        args.append(arg)
    command = shlex.join([sys.executable, "-m", "kez_cli", *args])
    Server(command, host="127.0.0.1", port=port, title="kez chat").serve()


def register(main_app: typer.Typer) -> None:
    from kez_core.registry import default_registry

    main_app.command(
        "chat",
        context_settings=CONTEXT_SETTINGS,
        epilog=options_help(default_registry(), TRANSPORT),
    )(chat)
