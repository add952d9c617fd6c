"""Options shared by many commands."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
IdentityOpt = Annotated[
    str | None,
    typer.Option("--identity", "-i", help="Identity name (default identity if omitted)."),
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds per request.", min=0.1)]
SigServerOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--sig-server",
        help="kez-server base URL holding sigchains (repeatable; env KEZ_SIG_SERVERS).",
    ),
]
HandleServerOpt = Annotated[
    str | None,
    typer.Option(
        "--handle-server",
        help="Look handles up at this base URL instead of https://<server> (env KEZ_HANDLE_SERVER).",
    ),
]
