"""`kez plugin new`: write a third-party plugin distribution from templates.

The templates (package data under `kez_cli/templates/`, `*.tmpl` so that nothing byte-compiles them) are the same shape
as `examples/kez-example`: a pyproject with the `kez` entry point, one
plugin module on the public plugin API, a README, and tests that subclass
the kind's contract suite from `kez_core.testing`. A generated distribution
passes its own tests as generated (tests/test_plugin_new.py installs one of
each kind and runs them). Nothing is ever overwritten.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from string import Template

import attrs

from kez_core.errors import ExitCode, KezError, StoreError


@attrs.frozen
class Kind:
    """One extension point a plugin can fill."""

    name: str  # `kez plugin new <name>`
    word: str  # in the distribution name: kez-<word>-<plugin>
    hook: str
    contract: str
    suffix: str  # class name suffix
    extra_deps: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {
    "channel": Kind(
        "channel",
        "channel",
        "kez_register_channels",
        "ChannelContract",
        "Channel",
        ("httpx>=0.27",),
    ),
    "transport": Kind(
        "transport", "transport", "kez_register_transports", "TransportContract", "Transport"
    ),
    "encoding": Kind(
        "encoding", "encoding", "kez_register_encodings", "EncodingContract", "Encoding"
    ),
    "key": Kind(
        "key",
        "key",
        "kez_register_key_algorithms",
        "KeyAlgorithmContract",
        "KeyAlgorithm",
        ("cryptography>=44",),
    ),
}

# A plugin name is a channel prefix, an encoding name or a key-id prefix, and
# part of a Python package name: lower-case letters and digits, a letter first.
_NAME = re.compile(r"[a-z][a-z0-9]{0,30}")
CORE_RANGE = ">=0.1,<0.2"


class UsageError(KezError):
    """A `kez plugin new` argument is not usable."""

    exit_code = ExitCode.USAGE
    code = "usage"


@attrs.frozen
class Generated:
    """What `new_plugin` wrote."""

    kind: str
    name: str
    distribution: str
    package: str
    path: Path
    files: tuple[str, ...]


def _words(kind: Kind, name: str) -> dict[str, str]:
    package = f"kez_{kind.word}_{name}"
    return {
        "kind": kind.name,
        "name": name,
        "dist": f"kez-{kind.word}-{name}",
        "package": package,
        "Class": name.capitalize() + kind.suffix,
        "flag": name,
        "ENV": name.upper(),
        "TITLE": name.upper(),
        "hook": kind.hook,
        "contract": kind.contract,
        "core_range": CORE_RANGE,
        "extra_deps": "".join(f', "{dep}"' for dep in kind.extra_deps),
    }


def new_plugin(kind_name: str, name: str, target: Path | None = None) -> Generated:
    """Write the distribution for plugin `name` of `kind_name` into `target` (default ./kez-<kind>-<name>)."""
    kind = KINDS.get(kind_name)
    if kind is None:
        raise UsageError(f"no plugin kind {kind_name!r}", hint=f"one of: {', '.join(KINDS)}")
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a usable plugin name",
            hint="lower-case letters and digits, a letter first, at most 31 characters (e.g. 'web')",
        )
    words = _words(kind, name)
    path = Path(target) if target is not None else Path.cwd() / words["dist"]
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise StoreError(
            f"{path} already exists and is not empty; nothing was written",
            hint="pass --dir with a new or empty folder",
        )
    templates = resources.files("kez_cli") / "templates"
    plan = {
        "pyproject.toml": templates / "common" / "pyproject.toml.tmpl",
        "README.md": templates / "common" / "README.md.tmpl",
        f"src/{words['package']}/__init__.py": templates / "common" / "__init__.py.tmpl",
        f"src/{words['package']}/plugin.py": templates / kind.name / "plugin.py.tmpl",
        f"tests/test_{words['package']}.py": templates / kind.name / "test_plugin.py.tmpl",
    }
    rendered = {
        rel: Template(src.read_text(encoding="utf-8")).substitute(words)
        for rel, src in plan.items()
    }
    try:
        for rel, text in rendered.items():
            out = path / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise StoreError(f"could not write {path}: {exc}") from exc
    return Generated(kind.name, name, words["dist"], words["package"], path, tuple(rendered))
