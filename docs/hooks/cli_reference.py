"""mkdocs hooks of the docs site (mkdocs.yml `hooks:`).

- `cli-reference.md` is generated at build time from the `kez` typer app,
  walking the same lazy command tree `kez --help` shows (built-in groups
  and installed plugin commands), so the page cannot drift from the code.
  docs/cli.md stays the hand-written guide (what each command means);
  tests/test_docs.py keeps its headings in step with the same tree.
- Every public name of the plugin API modules (the ones docs/api.md
  renders) must have a docstring: a missing one is a warning, which
  `mkdocs build --strict` turns into a failed build.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os

log = logging.getLogger("mkdocs.plugins.kez")

# The modules docs/api.md renders: what a plugin imports from kez-core.
API_MODULES = (
    "kez_core.hookspecs",
    "kez_core.protocols",
    "kez_core.errors",
    # kez_core.testing is a package: each contract suite lives in its own module
    "kez_core.testing.keys",
    "kez_core.testing.encodings",
    "kez_core.testing.channels",
    "kez_core.testing.transports",
    "kez_core.testing.ports",
    "kez_core.testing.pytest_plugin",
)


def undocumented(module_name: str) -> list[str]:
    """Public classes, functions and methods of `module_name` without a docstring.

    Contract-suite checks (`test_*` methods) are exempt: their names say
    what they check, and each contract class's docstring lists them.
    """
    module = importlib.import_module(module_name)
    missing = []
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
            continue
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not obj.__doc__:
            missing.append(f"{module_name}.{name}")
        if inspect.isclass(obj):
            for member, value in vars(obj).items():
                if member.startswith(("_", "test_")) or not inspect.isfunction(value):
                    continue
                if not value.__doc__:
                    missing.append(f"{module_name}.{name}.{member}")
    return missing


def on_pre_build(config, **kwargs):
    for module_name in API_MODULES:
        for name in undocumented(module_name):
            log.warning(f"public name without a docstring: {name}")


def _commands(group, ctx, prefix):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        path = f"{prefix} {name}"
        sub = type(ctx)(command, info_name=name, parent=ctx)
        yield path, command, sub
        if hasattr(command, "list_commands"):
            yield from _commands(command, sub, path)


def _help(command, ctx) -> str:
    """`command --help` as text; typer's rich help prints instead of returning, so capture both."""
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        returned = command.get_help(ctx)
    return (returned or printed.getvalue()).rstrip()


def cli_reference() -> str:
    """The CLI reference page: every command's `--help`, from the typer app itself."""
    os.environ.setdefault("COLUMNS", "100")
    import typer

    from kez_cli.main import build_app

    root = typer.main.get_command(build_app())
    ctx = typer._click.Context(root, info_name="kez", terminal_width=100, max_content_width=100)
    parts = [
        "# CLI reference",
        "",
        "Generated from the `kez` command itself when this site is built: each",
        "command's `--help`, built-in commands and those of installed plugins.",
        "The [CLI guide](cli.md) says what each command does and why.",
        "",
        "## `kez`",
        "",
        "```text",
        _help(root, ctx),
        "```",
    ]
    for path, command, sub in _commands(root, ctx, "kez"):
        parts += ["", f"## `{path}`", "", "```text", _help(command, sub), "```"]
    return "\n".join(parts) + "\n"


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    files.append(File.generated(config, "cli-reference.md", content=cli_reference()))
    return files
