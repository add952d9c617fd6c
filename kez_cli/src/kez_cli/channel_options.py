"""Channel and transport settings from the command line and the environment.

Channels and transports declare their settings as typed `PluginOption`s
(flag, env var, default, type or parse function); this module is the one
place that handles flags, variables and defaults for every plugin, and
converts each value once, so a malformed one is a `ChannelConfigError`
(exit 2) naming the flag before any plugin runs. A command accepts the flags of the plugin kind it uses
and no other: `kez verify` and `kez claim publish` take channel flags (so
`kez verify --github-api http://127.0.0.1:8080 github:alice` reaches the
GitHub channel without the CLI knowing GitHub exists), `kez message send`
and `listen` take transport flags; `kez verify --nats-url x` is a usage
error. Precedence: flag, then environment variable, then the option's
default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from kez_core.errors import UnknownNameError
from kez_core.protocols import PluginContext, PluginOption
from kez_core.registry import Registry

# Click passes the flags it does not know on to the command, which parses them here.
CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}

CHANNEL = "channel"  # kez verify, kez claim publish
TRANSPORT = "transport"  # kez message send / listen


def declared_options(registry: Registry, kind: str | None = None) -> list[PluginOption]:
    """The options plugins of `kind` (CHANNEL or TRANSPORT; None: both) declare, by flag."""
    providers = {CHANNEL: registry.channels, TRANSPORT: registry.transports}
    seen: dict[str, PluginOption] = {}
    for name, listed in providers.items():
        if kind is not None and name != kind:
            continue
        for provider in listed():
            for option in getattr(provider, "options", ()) or ():
                seen.setdefault(option.flag, option)
    return sorted(seen.values(), key=lambda o: o.flag)


def options_help(registry: Registry, kind: str | None = None) -> str:
    """Text listing the flags of `kind`'s plugins, for a command's epilog (`\\b`: click keeps the lines as they are)."""
    lines = ["\b", f"{(kind or 'plugin').capitalize()} settings (flag, or environment variable):"]
    for option in declared_options(registry, kind):
        lines.append(f"  {option.flag} VALUE  [{option.env}]  {option.help}")
    return "\n".join(lines)


def parse_channel_args(
    args: Sequence[str],
    registry: Registry,
    env: Mapping[str, str] | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """`--flag VALUE` / `--flag=VALUE` pairs for declared options → PluginContext.options."""
    env = os.environ if env is None else env
    by_flag = {o.flag: o for o in declared_options(registry, kind)}
    given: dict[str, list[str]] = {}
    i = 0
    args = list(args)
    while i < len(args):
        arg = args[i]
        flag, eq, value = arg.partition("=")
        option = by_flag.get(flag)
        if option is None:
            known = ", ".join(by_flag) or f"none (no {kind or 'plugin'} declares any)"
            raise UnknownNameError(
                f"unknown option or argument {arg!r}", hint=f"{kind or 'plugin'} flags: {known}"
            )
        if not eq:
            if i + 1 >= len(args):
                raise UnknownNameError(f"{flag} needs a value")
            value = args[i + 1]
            i += 1
        given.setdefault(option.name, []).append(value)
        i += 1
    out: dict[str, Any] = {}
    for option in by_flag.values():
        if option.name in given:
            values = given[option.name]
            out[option.name] = option.convert(tuple(values) if option.multiple else values[-1])
        elif env.get(option.env):
            out[option.name] = option.convert(env[option.env])  # a multiple one: comma-separated
        elif option.default is not None:
            out[option.name] = option.default
    return out


def make_context(
    args: Sequence[str], registry: Registry, timeout: float, kind: str | None = None
) -> PluginContext:
    return PluginContext(options=parse_channel_args(args, registry, kind=kind), timeout=timeout)


def split_channel_args(
    tokens: Sequence[str], registry: Registry, kind: str | None = None
) -> tuple[list[str], list[str]]:
    """Separate the declared flags of `kind`'s plugins (and their values) from positional arguments.

    Click hands unknown options to a command's variadic argument, so a
    command taking `TARGETS...` receives `--github-api URL` among its
    targets; this takes them back out. Any other `--flag`, a flag of
    another plugin kind included, is a usage error.
    """
    by_flag = {o.flag for o in declared_options(registry, kind)}
    positional: list[str] = []
    flags: list[str] = []
    i = 0
    tokens = list(tokens)
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--"):
            flag = token.partition("=")[0]
            if flag not in by_flag:
                known = ", ".join(sorted(by_flag)) or "none"
                raise UnknownNameError(
                    f"unknown option {flag!r}", hint=f"{kind or 'plugin'} flags: {known}"
                )
            flags.append(token)
            if "=" not in token:
                if i + 1 >= len(tokens):
                    raise UnknownNameError(f"{flag} needs a value")
                flags.append(tokens[i + 1])
                i += 1
        else:
            positional.append(token)
        i += 1
    return positional, flags
