"""Plugin metadata read without importing any plugin, nor pluggy.

`kez --help`, `kez --version` and `kez plugins` must start in a blink
(DESIGN.md §1): they learn what is installed from entry-point metadata
only. This module holds what they need and nothing heavy: the names of
the two entry-point groups, the `KEZ_PLUGINS` / `KEZ_DISABLE_PLUGINS`
knobs, and the commands plugins add (entries of the same `kez` group named
`command.<name>`: `<name>` is the command's name, the distribution's
summary its help line, and the object the entry names is imported only when
the command runs). DESIGN.md §1 fixes one entry-point group for every
plugin, so commands are told apart by that name, not by a second group.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import attrs

ENTRY_POINT_GROUP = "kez"
COMMAND_PREFIX = "command."  # `command.server = "kez_server.cli:kez_command"` adds `kez server`


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def names(value: str | None) -> set[str]:
    return {part.strip() for part in (value or "").split(",") if part.strip()}


def enabled(name: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether `KEZ_PLUGINS` / `KEZ_DISABLE_PLUGINS` let the plugin (or plugin command) `name` load."""
    env = os.environ if env is None else env
    only = names(env.get("KEZ_PLUGINS"))
    return not ((only and name not in only) or name in names(env.get("KEZ_DISABLE_PLUGINS")))


@attrs.frozen
class CommandEntry:
    """A `kez` sub-command a distribution declares as `command.<name>` in the `kez` group."""

    name: str
    value: str  # "module:attr", naming a typer.Typer or a click command
    distribution: str
    version: str
    summary: str
    entry_point: metadata.EntryPoint = attrs.field(eq=False, repr=False)

    def load(self) -> object:
        """Import the module and return the object the entry point names."""
        return self.entry_point.load()


@attrs.frozen
class DistInfo:
    """What the listing needs from a distribution's METADATA, parsed once (each read parses the whole file)."""

    name: str
    version: str
    summary: str
    requires: tuple[str, ...]


_UNKNOWN = DistInfo("?", "?", "", ())


def distribution_of(ep: metadata.EntryPoint, cache: dict[Any, DistInfo] | None = None) -> DistInfo:
    """The distribution an entry point comes from; `cache` keeps one parse per distribution."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return _UNKNOWN
    key = getattr(dist, "_path", None) or id(dist)
    found = cache.get(key) if cache is not None else None
    if found is None:
        meta = dist.metadata
        requires = meta.get_all("Requires-Dist") or dist.requires or ()
        found = DistInfo(
            meta["Name"] or "?", meta["Version"] or "?", meta["Summary"] or "", tuple(requires)
        )
        if cache is not None:
            cache[key] = found
    return found


def is_command(entry_name: str) -> bool:
    """Whether a `kez` entry point declares a command (`command.<name>`) rather than a hook plugin."""
    return entry_name.startswith(COMMAND_PREFIX) and len(entry_name) > len(COMMAND_PREFIX)


def command_entries(cache: dict[Any, DistInfo] | None = None) -> list[CommandEntry]:
    """Every plugin command from metadata, first of each name wins, in discovery order. Imports nothing."""
    found: dict[str, CommandEntry] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if not is_command(ep.name):
            continue
        name = ep.name[len(COMMAND_PREFIX) :]
        if name in found:
            continue  # the same distribution twice on sys.path, or a conflict the Registry reports
        dist = distribution_of(ep, cache)
        found[name] = CommandEntry(name, ep.value, dist.name, dist.version, dist.summary, ep)
    return list(found.values())
