"""The `kez` command: built-in groups plus whatever plugins add.

Plugin commands arrive through the `kez_register_commands` hook, the same
way a third-party plugin would add one. Errors that users can cause are
`KezError`s: they become one readable message and a documented exit code
(docs/cli.md), never a traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from kez_core import __version__ as core_version
from kez_core.errors import ExitCode, KezError
from kez_core.registry import default_registry

from .commands import claim, demo, handle, identity, message, plugins, sigchain, verify
from .output import State, report_error, warn

HELP = """KEZ: prove that accounts, keys and domains are all you, with signatures anyone can check.

Exit codes: 0 ok · 1 verified but not valid · 2 usage · 3 bad input · 4 keystore/file · 5 network · 6 plugin."""


def _version(value: bool) -> None:
    if value:
        from importlib import metadata

        try:
            cli_version = metadata.version("kez")
        except metadata.PackageNotFoundError:
            cli_version = "?"
        sys.stdout.write(f"kez {cli_version} (kez-core {core_version})\n")
        raise typer.Exit()


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="kez",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )

    @app.callback()
    def _root(
        version: Annotated[
            bool, typer.Option("--version", callback=_version, is_eager=True, help="Show versions and exit.")
        ] = False,
    ) -> None:
        """KEZ identity graph."""

    app.add_typer(identity.app, name="identity")
    app.add_typer(claim.app, name="claim")
    app.add_typer(sigchain.app, name="sigchain")
    app.add_typer(handle.app, name="handle")
    message.register(app)
    verify.register(app)
    plugins.register(app)
    demo.register(app)
    default_registry().register_commands(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kez` console script; returns the exit code when given `argv`."""
    registry = default_registry()
    registry._warn = warn  # plugin warnings in the CLI's style, on stderr
    try:
        app = build_app()
        app(args=argv, prog_name="kez")
        code = ExitCode.OK
    except SystemExit as exc:  # typer ends every run, help and usage errors included, this way
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KezError as exc:
        report_error(exc)
        code = exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("kez: interrupted\n")
        code = 130
    except BrokenPipeError:
        code = 0
    finally:
        State.json_mode = False
    if argv is None:
        sys.exit(code)
    return code
