"""The `kez` command: built-in groups plus whatever plugins add.

The command tree is lazy (kez_cli.lazy): the root knows each sub-command
by name and help line and imports its module only when it runs, so `kez
--help`, `kez --version` and `kez plugins` import no plugin (issue 16).
Plugin commands are declared in a `command.<name>` entry of the `kez` entry-point group, or
added by the older `kez_register_commands` hook, asked only for a name
nothing else knows. Errors that users can cause are `KezError`s: they
become one readable message and a documented exit code (docs/cli.md),
never a traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from typer import _click

from kez_core import __version__ as core_version
from kez_core.errors import ExitCode, KezError

from .lazy import HELP_MARKUP, LazyCommand, LazyGroup, from_module, from_object
from .state import CliState, begin, end

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


# The built-in commands, in the order `kez --help` lists them, with their help lines.
BUILTIN_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("verify", "verify", "Verify subjects and identities against what their channels publish."),
    (
        "plugins",
        "plugins",
        "List every plugin: distribution, version, what it provides, load state.",
    ),
    ("plugin", "plugin", "Start a new plugin distribution of your own."),
    (
        "demo",
        "demo",
        "Run the end-to-end demo: identities, claims in every encoding, then publish and verify on local servers.",
    ),
    ("identity", "identity", "Create, list, show, export and import identities (your keys)."),
    ("claim", "claim", "Create, verify, decode, publish and revoke signed claims."),
    (
        "sigchain",
        "sigchain",
        "Build, inspect, merge and verify sigchains (your identity's signed history).",
    ),
    ("handle", "handle", "Register and look up handles (alice@example.org) on a kez-server."),
    (
        "message",
        "message",
        "Send and receive end-to-end encrypted messages (HPKE to the recipient's inbox keys).",
    ),
    (
        "chat",
        "chat",
        "Chat in the terminal (or a browser tab with --web): conversations, delivery states, files.",
    ),
    ("contact", "contact", "Keep contacts: add, list, rename, remove, block."),
    (
        "profile",
        "profile",
        "Publish your profile and picture (visually encrypted); show other people's.",
    ),
)


def _plugin_command(name: str, help: str) -> LazyCommand:
    def build() -> _click.Command:
        from kez_core.registry import default_registry

        return from_object(name, default_registry().load_command(name))

    return LazyCommand(name=name, help=help, build=build)


# The plugin commands found in metadata, and the sys.path (each folder with its mtime) they
# were read from. Reading them walks every installed distribution, ~10 ms; `main()` run many
# times in one process (the `kez` pytest fixture, a plugin's suite) reads them again only
# when sys.path or a folder on it changed (a distribution installed or removed there).
_ENTRIES: tuple[tuple[tuple[str, int | None], ...], list[Any]] | None = None


def _path_state() -> tuple[tuple[str, int | None], ...]:
    state = []
    for folder in sys.path:
        path = folder or os.getcwd()
        try:
            state.append((path, os.stat(path).st_mtime_ns))
        except OSError:
            state.append((path, None))
    return tuple(state)


def _command_entries() -> list[Any]:
    global _ENTRIES
    from kez_core.entrypoints import command_entries

    key = _path_state()
    if _ENTRIES is None or _ENTRIES[0] != key:
        _ENTRIES = (key, command_entries())
    return _ENTRIES[1]


class KezGroup(LazyGroup):
    """The root `kez` group: built-in commands, then plugin commands from metadata."""

    def lazy_commands(self, ctx: _click.Context) -> dict[str, LazyCommand]:
        from kez_core.entrypoints import enabled

        table = {
            name: from_module(name, f"kez_cli.commands.{module}", help)
            for name, module, help in BUILTIN_COMMANDS
        }
        for entry in _command_entries():
            if entry.name not in table and enabled(entry.name):
                help = entry.summary or f"A command from {entry.distribution} {entry.version}."
                table[entry.name] = _plugin_command(entry.name, help)
        return table

    def fallback_command(self, ctx: _click.Context, name: str) -> _click.Command | None:
        """Commands of plugins that use the `kez_register_commands` hook: built only for a name no table knows."""
        from kez_core.registry import default_registry

        scratch = typer.Typer(rich_markup_mode=HELP_MARKUP)
        scratch.callback()(lambda: None)
        default_registry().register_commands(scratch)
        return typer.main.get_command(scratch).commands.get(name)  # type: ignore[attr-defined]

    def invoke(self, ctx: _click.Context) -> object:
        if (
            ctx._protected_args
        ):  # a sub-command runs (not --help / --version): it will use the Registry
            from kez_core.registry import default_registry

            from .output import warn

            default_registry()._warn = warn  # plugin warnings in the CLI's style, on stderr
        return super().invoke(ctx)


def build_app() -> typer.Typer:
    """A fresh root app; its sub-commands are imported when they run (kez_cli.lazy)."""
    app = typer.Typer(
        cls=KezGroup,
        name="kez",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=HELP_MARKUP,
    )

    @app.callback()
    def _root(
        version: Annotated[
            bool,
            typer.Option(
                "--version", callback=_version, is_eager=True, help="Show versions and exit."
            ),
        ] = False,
    ) -> None:
        """KEZ identity graph."""

    return app


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kez` console script; returns the exit code when given `argv`."""
    state = CliState()
    token = begin(state)  # error reporting below runs after click's context is gone
    try:
        app = build_app()
        app(args=argv, prog_name="kez", obj=state)
        code = ExitCode.OK
    except SystemExit as exc:  # typer ends every run, help and usage errors included, this way
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KezError as exc:
        from .output import report_error

        report_error(exc)
        code = exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("kez: interrupted\n")
        code = 130
    except BrokenPipeError:
        code = 0
    finally:
        end(token)
    if argv is None:
        sys.exit(code)
    return code
