"""The typed plugin Registry: the only code that calls pluggy hooks.

Why not `pm.hook.<name>()` everywhere: pluggy silently keeps both of two
plugins that claim the same name, cannot say which distribution a result
came from, and takes the process down when one plugin fails to import. The
Registry fixes all three:

- plugins are listed from entry-point metadata without importing them
  (`plugins()`), and imported the first time anything is looked up; the
  commands plugins add (entry-point group `command.<name>` entries) are listed the
  same way and imported one by one, when that command runs
  (`load_command()`);
- an import or hook failure marks that plugin `broken` (name, distribution,
  version and the error are kept) and the rest keep working, unless
  `KEZ_STRICT_PLUGINS=1`, which makes it a `RegistryError`;
- every object is checked against its Protocol and indexed by name; two
  objects with one name raise `RegistryError` naming both distributions.

Environment knobs (read when the Registry is built):
`KEZ_PLUGINS=a,b` loads only these plugins, `KEZ_DISABLE_PLUGINS=x,y`
blocks these, `KEZ_STRICT_PLUGINS=1` makes failures fatal,
`KEZ_TRACE_PLUGINS=1` logs every hook call on stderr.
"""

from __future__ import annotations

import operator
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .entrypoints import (
    ENTRY_POINT_GROUP,
    CommandEntry,
    DistInfo,
    command_entries,
    distribution_of,
    is_command,
)
from .entrypoints import names as _names
from .entrypoints import truthy as _truthy
from .demo import DemoServer
from .errors import RegistryError, UnknownNameError
from .protocols import Channel, Encoding, KeyAlgorithm, Transport, missing_members

# extension point kind -> hook name
KINDS: dict[str, str] = {
    "key_algorithm": "kez_register_key_algorithms",
    "encoding": "kez_register_encodings",
    "channel": "kez_register_channels",
    "transport": "kez_register_transports",
}


@attrs.define
class PluginInfo:
    """What is known about one plugin: from metadata before loading, more after."""

    name: str
    module: str
    distribution: str
    version: str
    state: str = "not loaded"  # not loaded | loaded | broken | disabled
    error: str = ""
    provides: dict[str, list[str]] = attrs.field(factory=dict)
    core_requirement: str = ""
    core_compatible: bool = True
    builtin: bool = False


def _core_version() -> str:
    try:
        return metadata.version("kez-core")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0"


class Registry:
    """Looks up key algorithms, encodings, channels and transports by name.

    Build one with `Registry()` (entry points of the `kez` group) or pass
    `plugins=` objects/modules directly (tests, embedding) with
    `entry_points=False`.
    """

    def __init__(
        self,
        *,
        plugins: Iterable[object] = (),
        entry_points: bool = True,
        env: Mapping[str, str] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.strict = _truthy(env.get("KEZ_STRICT_PLUGINS"))
        self.trace = _truthy(env.get("KEZ_TRACE_PLUGINS"))
        self._only = _names(env.get("KEZ_PLUGINS"))
        self._blocked = _names(env.get("KEZ_DISABLE_PLUGINS"))
        self._warn = warn or (lambda message: print(f"kez: warning: {message}", file=sys.stderr))
        self.warnings: list[str] = []
        self._pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self._pm.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        self._entry_points: dict[str, metadata.EntryPoint] = {}
        self._commands: dict[str, CommandEntry] = {}
        self._commands_found = True  # until _discover reads entry points
        self._dists: dict[Any, DistInfo] = {}
        self._core = ""
        self._direct: list[tuple[str, object]] = []
        self._imported = False
        self._fatal: RegistryError | None = None
        self._lock = threading.RLock()
        self._index: dict[str, dict[str, tuple[object, str]]] = {}
        self._by_signature_alg: dict[str, KeyAlgorithm] = {}
        self._encodings_in_order: list[Encoding] = []
        if entry_points:
            self._discover()
        for obj in plugins:
            name = getattr(obj, "__name__", None) or type(obj).__name__
            self._direct.append((name, obj))
            self._infos[name] = PluginInfo(
                name=name, module=name, distribution="(direct)", version=""
            )

    # ------------------------------------------------------------------ discovery

    def _discover(self) -> None:
        """Read the entry points of the `kez` group; import nothing."""
        dists: dict[Any, DistInfo] = {}
        found = [
            (ep, distribution_of(ep, dists))
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
            if not is_command(ep.name)  # `command.<name>` entries are read by `_discover_commands`
        ]
        # kez-core declares the built-ins, so its metadata is at hand (a source tree without it: look it up)
        core = (
            next((dist.version for _, dist in found if dist.name == "kez-core"), None)
            or _core_version()
        )
        for ep, dist in found:
            dist_name, version = dist.name, dist.version
            if ep.name in self._entry_points:
                first = self._infos[ep.name]
                if first.distribution == dist_name and first.module == ep.value:
                    continue  # the same distribution seen twice on sys.path
                message = (
                    f"two plugins are named {ep.name!r}: {first.distribution} {first.version} "
                    f"({first.module}) and {dist_name} {version} ({ep.value}); only the first is used"
                )
                if self.strict:
                    raise RegistryError(message, hint="rename one entry point in the `kez` group")
                self._note(message)
                continue
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist_name,
                version=version,
                builtin=dist_name == "kez-core",
            )
            if dist_name != "kez-core":
                self._check_core_requirement(info, dist.requires, core)
            if (self._only and ep.name not in self._only) or ep.name in self._blocked:
                info.state = "disabled"
            self._entry_points[ep.name] = ep
            self._infos[ep.name] = info
        self._dists, self._core = dists, core
        self._commands_found = False

    def _discover_commands(self) -> None:
        """Read the `command.<name>` entries of the `kez` group, on first need: lookups of the other kinds never pay for it."""
        with self._lock:
            if self._commands_found:
                return
            self._commands_found = True
            for entry in command_entries(self._dists):
                self._discover_command(
                    entry, distribution_of(entry.entry_point, self._dists).requires, self._core
                )

    def _discover_command(self, entry: CommandEntry, requires: tuple[str, ...], core: str) -> None:
        """A `command.<name>` entries entry: listed as (part of) a plugin that provides that command."""
        info = self._infos.get(entry.name)
        if info is not None and info.distribution != entry.distribution:
            message = (
                f"two plugins are named {entry.name!r}: {info.distribution} {info.version} "
                f"({info.module}) and {entry.distribution} {entry.version} (command {entry.value}); "
                "only the first is used"
            )
            if self.strict:
                raise RegistryError(message, hint="rename one entry point")
            self._note(message)
            return
        if info is None:
            info = PluginInfo(
                name=entry.name,
                module=entry.value,
                distribution=entry.distribution,
                version=entry.version,
            )
            self._check_core_requirement(info, requires, core)
            if (self._only and entry.name not in self._only) or entry.name in self._blocked:
                info.state = "disabled"
            self._infos[entry.name] = info
        info.provides.setdefault("command", []).append(entry.name)
        self._commands[entry.name] = entry

    def _check_core_requirement(self, info: PluginInfo, requires: Iterable[str], core: str) -> None:
        for raw in requires:
            verdict = core_requirement(raw, core)
            if verdict is None:
                continue
            specifier, ok = verdict
            info.core_requirement = specifier
            if not ok:
                info.core_compatible = False
                self._note(
                    f"plugin {info.name!r} ({info.distribution} {info.version}) wants kez-core"
                    f"{specifier}, installed is {core}; it may not work"
                )

    # -------------------------------------------------------------------- loading

    def plugins(self) -> list[PluginInfo]:
        """Every known plugin, loaded or not, sorted by name. Imports nothing."""
        self._discover_commands()
        return sorted(self._infos.values(), key=lambda info: info.name)

    def load(self) -> None:
        """Import and register every enabled plugin, then index everything they provide.

        Idempotent: a plugin is imported and registered at most once, and a
        strict-mode failure is raised again on every later call instead of
        leaving a half-loaded registry behind.
        """
        for kind in KINDS:
            self._kind(kind)

    def _kind(self, kind: str) -> dict[str, tuple[object, str]]:
        """The index of one kind, its hooks called on first use.

        Plugins are all imported at once (a module may provide any kind),
        but only the registration hooks of the kinds in use run: `kez claim
        verify` asks for key algorithms and encodings and never builds the
        channels and transports (whose modules bring asyncio, HTTP and
        websocket clients).
        """
        index = self._index.get(kind)
        if index is not None:  # stored last, under the lock, once complete
            return index
        with self._lock:
            if kind in self._index:
                return self._index[kind]
            if self._fatal is not None:
                raise self._fatal
            try:
                self._import_all()
                index = self._collect(kind)
            except RegistryError as exc:
                self._fatal = exc
                raise
            if kind == "key_algorithm":
                self._by_signature_alg = {alg.signature_alg: alg for alg in _distinct(index)}
            elif kind == "encoding":
                self._encodings_in_order = sorted(
                    _distinct(index), key=lambda e: (e.priority, e.name)
                )
            self._index[kind] = index
            return index

    def _ensure_imported(self) -> None:
        with self._lock:
            if self._fatal is not None:
                raise self._fatal
            try:
                self._import_all()
            except RegistryError as exc:
                self._fatal = exc
                raise

    def _import_all(self) -> None:
        """Import and register every enabled plugin, once (callers hold the lock)."""
        if self._imported:
            return
        for name, ep in self._entry_points.items():
            info = self._infos[name]
            if info.state != "not loaded":
                continue
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure marks the plugin broken
                self._broken(info, f"import failed: {type(exc).__name__}: {exc}")
                continue
            self._register(info, module)
        for name, obj in self._direct:
            if self._infos[name].state == "not loaded":
                self._register(self._infos[name], obj)
        self._imported = True

    def _register(self, info: PluginInfo, plugin: object) -> None:
        try:
            self._pm.register(plugin, name=info.name)
        except ValueError as exc:
            self._broken(info, f"could not register: {exc}")
            return
        except pluggy.PluginValidationError as exc:
            self._broken(info, f"invalid hook implementation: {exc}")
            return
        unknown = [
            hook_name
            for hook_name in dir(plugin)
            if hook_name.startswith("kez_")
            and hasattr(getattr(plugin, hook_name, None), "kez_impl")
            and not hasattr(hookspecs, hook_name)
        ]
        if unknown:
            self._pm.unregister(name=info.name)
            self._broken(info, f"implements unknown hook(s) {', '.join(unknown)} (misspelled?)")
            return
        info.state = "loaded"

    def _broken(self, info: PluginInfo, error: str) -> None:
        info.state = "broken"
        info.error = error
        message = f"plugin {info.name!r} ({info.distribution} {info.version}) is broken: {error}"
        if self.strict:
            raise RegistryError(message, hint="unset KEZ_STRICT_PLUGINS to skip broken plugins")
        self._note(message)

    def _note(self, message: str) -> None:
        self.warnings.append(message)
        self._warn(message)

    def _call_each(self, hook_name: str, **kwargs: Any) -> Iterable[tuple[PluginInfo, Any]]:
        """Call one hook plugin by plugin, so results keep their origin and a failure stays local."""
        caller = getattr(self._pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            info = self._infos[impl.plugin_name]
            if info.state != "loaded":
                continue
            args = {name: kwargs[name] for name in impl.argnames}
            if self.trace:
                print(f"kez: trace: {hook_name}() -> plugin {info.name}", file=sys.stderr)
            try:
                result = impl.function(**args)
            except Exception as exc:  # noqa: BLE001 - a failing hook marks its plugin broken
                self._broken(info, f"{hook_name} raised {type(exc).__name__}: {exc}")
                continue
            yield info, result

    def _collect(self, kind: str) -> dict[str, tuple[object, str]]:
        index: dict[str, tuple[object, str]] = {}
        for info, result in self._call_each(KINDS[kind]):
            if result is None:
                continue
            try:
                objects = list(result)
            except TypeError:
                self._broken(
                    info, f"{KINDS[kind]} must return an iterable, got {type(result).__name__}"
                )
                continue
            for obj in objects:
                missing = missing_members(kind, obj)
                if missing:
                    self._broken(info, f"{kind} {obj!r} lacks {', '.join(missing)}")
                    continue
                names = [obj.name] + list(getattr(obj, "aliases", ()) if kind == "channel" else ())
                for name in names:
                    if name in index:
                        other = self._infos[index[name][1]]
                        raise RegistryError(
                            f"two plugins provide the {kind} {name!r}: "
                            f"{other.name} ({other.distribution} {other.version}) and "
                            f"{info.name} ({info.distribution} {info.version})",
                            hint=f"uninstall one, or block one with KEZ_DISABLE_PLUGINS={info.name}",
                        )
                    index[name] = (obj, info.name)
                info.provides.setdefault(kind, []).append(obj.name)
        return index

    # -------------------------------------------------------------------- lookups

    def _lookup(self, kind: str, name: str) -> Any:
        index = self._kind(kind)
        entry = index.get(name)
        if entry is None:
            known = ", ".join(sorted(index)) or "none"
            label = kind.replace("_", " ")
            raise UnknownNameError(
                f"unknown {label} {name!r} (known: {known})",
                hint="`kez plugins` lists what is installed; a plugin may provide it",
            )
        return entry[0]

    def _all(self, kind: str) -> list[Any]:
        return _distinct(self._kind(kind))

    def key_algorithm(self, name: str) -> KeyAlgorithm:
        found: KeyAlgorithm = self._lookup("key_algorithm", name)
        return found

    def key_algorithms(self) -> list[KeyAlgorithm]:
        return self._all("key_algorithm")

    def key_algorithm_for_signature(self, signature_alg: str) -> KeyAlgorithm:
        """The key algorithm whose `signature_alg` is this `signature.alg` value."""
        self._kind("key_algorithm")
        found = self._by_signature_alg.get(signature_alg)
        if found is not None:
            return found
        known = ", ".join(sorted(a.signature_alg for a in self.key_algorithms()))
        raise UnknownNameError(f"unknown signature alg {signature_alg!r} (known: {known})")

    def encoding(self, name: str) -> Encoding:
        found: Encoding = self._lookup("encoding", name)
        return found

    def encodings(self) -> list[Encoding]:
        """All encodings, in auto-detection order (lowest `priority` first)."""
        self._kind("encoding")
        return list(self._encodings_in_order)

    def _detection_order(self) -> list[Encoding]:
        """`encodings()` without the copy, for readers that only iterate it."""
        self._kind("encoding")
        return self._encodings_in_order

    def channel(self, name: str) -> Channel:
        found: Channel = self._lookup("channel", name)
        return found

    def channels(self) -> list[Channel]:
        return self._all("channel")

    def transport(self, name: str) -> Transport:
        found: Transport = self._lookup("transport", name)
        return found

    def transports(self) -> list[Transport]:
        return self._all("transport")

    def commands(self) -> list[CommandEntry]:
        """The enabled plugin commands (`command.<name>` entries entry points), from metadata only."""
        self._discover_commands()
        return [
            entry for name, entry in self._commands.items() if self._infos[name].state != "disabled"
        ]

    def load_command(self, name: str) -> object:
        """Import the plugin command `name` and return what its entry point names.

        The caller asked to run this command, so a failure is always an
        error here (`RegistryError`, exit 6), in strict mode or not.
        """
        self._discover_commands()
        entry = self._commands.get(name)
        info = self._infos.get(name)
        if entry is None or info is None or info.state == "disabled":
            raise UnknownNameError(
                f"no plugin command {name!r}", hint="`kez plugins` lists what is installed"
            )
        try:
            obj = entry.load()
        except Exception as exc:  # noqa: BLE001 - any import failure marks the plugin broken
            info.state, info.error = "broken", f"import failed: {type(exc).__name__}: {exc}"
            raise RegistryError(
                f"plugin command {name!r} ({info.distribution} {info.version}) is broken: {info.error}",
                hint=f"reinstall {info.distribution}, or block it with KEZ_DISABLE_PLUGINS={name}",
            ) from exc
        if info.state == "not loaded":
            info.state = "loaded"
        return obj

    def load_commands(self) -> None:
        """Import every enabled plugin command, marking failures broken (`kez plugins --load`)."""
        for entry in self.commands():
            info = self._infos[entry.name]
            try:
                entry.load()
            except Exception as exc:  # noqa: BLE001 - any import failure marks the plugin broken
                self._broken(info, f"command import failed: {type(exc).__name__}: {exc}")
                continue
            if info.state == "not loaded":
                info.state = "loaded"

    def demo_servers(self) -> list[DemoServer]:
        """The local servers plugins offer `kez demo` (`kez_demo_servers`), by `order` then name.

        A plugin whose hook returns something else than `DemoServer`s is
        reported broken; the same (kind, name) from two plugins is a
        `RegistryError`, as for any other name.
        """
        self._ensure_imported()
        found: dict[tuple[str, str], tuple[DemoServer, PluginInfo]] = {}
        for info, result in self._call_each("kez_demo_servers"):
            if result is None:
                continue
            try:
                servers = list(result)
            except TypeError:
                self._broken(
                    info, f"kez_demo_servers must return an iterable, got {type(result).__name__}"
                )
                continue
            bad = [s for s in servers if not isinstance(s, DemoServer)]
            if bad:
                self._broken(
                    info, f"kez_demo_servers returned {bad[0]!r}, not a kez_core.plugin.DemoServer"
                )
                continue
            for server in servers:
                key = (server.kind, server.name)
                if key in found:
                    other = found[key][1]
                    raise RegistryError(
                        f"two plugins offer the demo {server.kind} server {server.name!r}: "
                        f"{other.name} ({other.distribution} {other.version}) and "
                        f"{info.name} ({info.distribution} {info.version})",
                        hint=f"uninstall one, or block one with KEZ_DISABLE_PLUGINS={info.name}",
                    )
                found[key] = (server, info)
        return sorted((s for s, _ in found.values()), key=lambda s: (s.order, s.kind, s.name))

    def register_commands(self, cli: Any) -> None:
        """Let plugins add sub-commands to the CLI (`kez_register_commands`)."""
        self._ensure_imported()
        for _info, _result in self._call_each("kez_register_commands", cli=cli):
            pass


def _distinct(index: Mapping[str, tuple[object, str]]) -> list[Any]:
    """The objects of an index once each (a channel is indexed under its aliases too)."""
    seen: dict[int, Any] = {}
    for obj, _ in index.values():
        seen.setdefault(id(obj), obj)
    return list(seen.values())


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The process-wide Registry over installed entry points (built on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry()
        return _default


def reset_default_registry() -> None:
    """Forget the process-wide Registry (tests, or after changing KEZ_* variables)."""
    global _default
    with _default_lock:
        _default = None


# ------------------------------------------------------------ kez-core requirements

# `kez-core>=0.1,<0.2` (any extras), what every plugin declares: clauses of release
# numbers only, compared as PEP 440 does for such versions (zero-padded tuples).
_SIMPLE_REQUIREMENT = re.compile(r"kez[-_]core\s*(?:\[[A-Za-z0-9_.,\s-]*\])?\s*(.*)", re.I)
_SIMPLE_CLAUSE = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)\s*")
_RELEASE = re.compile(r"\d+(?:\.\d+)*")
# a requirement's distribution name (PEP 508), and the runs PEP 503 folds to one "-"
_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?![A-Za-z0-9._-])")
_NAME_SEPARATORS = re.compile(r"[-_.]+")
_COMPARE: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}


def core_requirement(raw: str, core: str) -> tuple[str, bool] | None:
    """(specifier text, satisfied by `core`) when `raw` is a requirement on kez-core, else None.

    Requirements on other distributions, and the plain form every plugin writes,
    are decided here; anything else (pre-releases, `~=`, wildcards, local
    versions) goes to `packaging`, which is imported only then: it costs about
    15 ms of every command's start-up.
    """
    name = _NAME.match(raw)
    if name is not None and _NAME_SEPARATORS.sub("-", name.group(1)).lower() != "kez-core":
        return None  # another distribution (or no valid requirement): packaging says None too
    if name is not None and ";" in raw and "@" not in raw:
        return None  # a kez-core requirement under a marker (an extra's) is not checked
    simple = _SIMPLE_REQUIREMENT.fullmatch(raw.strip())
    if simple is not None and _RELEASE.fullmatch(core):
        clauses = simple.group(1).split(",") if simple.group(1).strip() else []
        parsed = [_SIMPLE_CLAUSE.fullmatch(c) for c in clauses]
        keys = {(m.group(1), _release(m.group(2), 0)) for m in parsed if m}
        if all(parsed) and len(keys) == len(parsed):  # repeated clauses: packaging's set rules
            width = max([len(core.split("."))] + [len(m.group(2).split(".")) for m in parsed if m])
            have = _release(core, width)
            ok = all(_COMPARE[m.group(1)](have, _release(m.group(2), width)) for m in parsed if m)
            return ",".join(sorted({f"{m.group(1)}{m.group(2)}" for m in parsed if m})), ok
    return _packaging_requirement(raw, core)


def _release(text: str, width: int) -> tuple[int, ...]:
    """`text`'s numbers zero-padded to `width`; width 0: trailing zeros dropped (a key)."""
    parts = [int(p) for p in text.split(".")]
    if not width:
        while len(parts) > 1 and parts[-1] == 0:
            parts.pop()
        return tuple(parts)
    return tuple(parts + [0] * (width - len(parts)))


def _packaging_requirement(raw: str, core: str) -> tuple[str, bool] | None:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    try:
        req = Requirement(raw)
    except InvalidRequirement:
        return None
    if req.name.lower().replace("_", "-") != "kez-core" or req.marker:
        return None
    try:
        ok = req.specifier.contains(Version(core), prereleases=True)
    except InvalidVersion:
        ok = True
    return str(req.specifier), ok
