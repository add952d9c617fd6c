"""Entry point of kez-server in the `kez` group: adds the `kez server` command.

`kez --help` imports this module, so it stays light: typer and the
settings only; starlette, sqlalchemy and uvicorn are imported when the
command runs.
"""

from __future__ import annotations

from typing import Any

import kez_core


@kez_core.hookimpl
def kez_register_commands(cli: Any) -> None:
    from .cli import HELP, serve_command

    cli.command("server", help=HELP, no_args_is_help=False)(serve_command)
