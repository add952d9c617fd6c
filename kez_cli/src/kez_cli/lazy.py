"""The lazy command tree (click's LazyGroup pattern, on typer's group class).

The root group knows every sub-command by name and one help line, from a
static table (the built-in groups) and from entry-point metadata (plugin
commands, `command.<name>` entries of the `kez` group), and imports a command's module in
`get_command()` only when that command runs. `kez --help` renders the
help lines from the table, so it imports no command module and no plugin.

A name found nowhere else is offered to plugins' `kez_register_commands`
hook last (the older way to add a command; such commands run, but `kez
--help` cannot list them without importing every plugin).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import attrs
import typer
from typer import _click
from typer.core import TyperCommand, TyperGroup

from .fast_params import speed_up


# Help and usage errors in click's plain layout. typer's rich layout imports
# rich, markdown-it and typer.rich_utils, about 100 ms: two thirds of the
# 150 ms `kez --help` may take (issue 16). Sub-commands inherit this.
HELP_MARKUP = None


@attrs.frozen
class LazyCommand:
    """One sub-command of a lazy group: its name, its help line, and how to build it."""

    name: str
    help: str
    build: Callable[[], _click.Command]

    def placeholder(self) -> _click.Command:
        """A stand-in that only carries the name and help line, for listing in `--help`."""
        return TyperCommand(self.name, help=self.help, short_help=self.help)


def _single(name: str, add: Callable[[typer.Typer], None]) -> _click.Command:
    """Build one sub-command: `add` puts it on a scratch typer app, which typer then turns into click objects."""
    scratch = typer.Typer(rich_markup_mode=HELP_MARKUP)
    scratch.callback()(
        _no_op
    )  # a callback keeps typer from collapsing a one-command app into that command
    add(scratch)
    group = typer.main.get_command(scratch)
    return group.commands[name]  # type: ignore[attr-defined]


def _no_op() -> None:
    """Placeholder root of a scratch app."""


# Built-in commands already built in this process, by name: (the Registry it was built
# with, the command). Building one reads its module and, for the plugin flags in some
# --help texts, the process-wide Registry; typer reads the signature of every command of
# the group, ~15 ms. `main()` run many times in one process (the `kez` pytest fixture, a
# plugin's suite) builds each once; a new Registry (`reset_default_registry`) builds anew.
_BUILT: dict[str, tuple[object, _click.Command]] = {}


def from_module(name: str, module: str, help: str) -> LazyCommand:
    """A built-in command from `module`: its `app` (a typer group), else its `register(app)` function."""

    def build() -> _click.Command:
        from kez_core.registry import default_registry

        registry = default_registry()  # already made: KezGroup.invoke set it up for this run
        built = _BUILT.get(name)
        if built is not None and built[0] is registry:
            return built[1]
        mod = importlib.import_module(module)
        if isinstance(getattr(mod, "app", None), typer.Typer):
            command = _single(name, lambda scratch: scratch.add_typer(mod.app, name=name))
        else:
            command = _single(name, mod.register)
        _BUILT[name] = (registry, command)
        return command

    return LazyCommand(name=name, help=help, build=build)


def from_object(name: str, obj: object) -> _click.Command:
    """A plugin command from the object its entry point names: a typer.Typer or a click command."""
    if isinstance(obj, typer.Typer):
        command = typer.main.get_command(obj)
    elif isinstance(obj, _click.Command):
        command = obj
    else:
        from kez_core.errors import RegistryError

        raise RegistryError(
            f"plugin command {name!r} names a {type(obj).__name__}, not a typer.Typer or click command",
            hint="see docs/plugins.md, section kez_register_commands",
        )
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A typer group whose sub-commands are `LazyCommand`s, built on first use.

    Subclasses provide `lazy_commands(ctx)`: typer makes the group itself
    from `typer.Typer(cls=...)` and passes no table to the constructor, so
    the group asks for it, once, when it first lists or resolves a command.
    """

    def lazy_commands(self, ctx: _click.Context) -> dict[str, LazyCommand]:
        return {}

    def fallback_command(self, ctx: _click.Context, name: str) -> _click.Command | None:
        """A command that is in no table (plugin hooks); None when there is none."""
        return None

    def _table(self, ctx: _click.Context) -> dict[str, LazyCommand]:
        table = getattr(self, "_lazy_table", None)
        if table is None:
            table = self._lazy_table = self.lazy_commands(ctx)
        return table

    def list_commands(self, ctx: _click.Context) -> list[str]:
        names = list(self.commands)
        names += [name for name in self._table(ctx) if name not in self.commands]
        return names

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry = self._table(ctx).get(cmd_name)
        if entry is not None and getattr(self, "_listing", False):
            return entry.placeholder()
        command = entry.build() if entry is not None else self.fallback_command(ctx, cmd_name)
        if command is not None:
            speed_up(command, ctx)
            self.commands[cmd_name] = command
        return command

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        speed_up(
            self, ctx
        )  # the group's own options (built sub-commands got theirs in get_command)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: _click.Context, formatter: Any) -> None:
        self._listing = True  # list sub-commands by their table entries: build none of them
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(self, ctx: _click.Context, args: list[str]) -> Any:
        try:
            return self._click_resolve_command(ctx, args)
        except _click.exceptions.UsageError as exc:
            from difflib import get_close_matches

            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if matches:
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {', '.join(repr(m) for m in matches)}?"
            raise
