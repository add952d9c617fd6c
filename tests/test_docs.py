"""The docs stay true: every hookspec and every CLI command is documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import typer

from kez_core import hookspecs
from kez_cli.main import build_app

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _spec_signature(fn) -> str:
    params = ", ".join(
        f"{name}: {ann}" for name, ann in fn.__annotations__.items() if name != "return"
    )
    return f"def {fn.__name__}({params}) -> {fn.__annotations__['return']}"


def _hookspecs():
    return [
        fn
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("kez_")
    ]


def test_every_hookspec_is_documented_with_its_signature():
    guide = (DOCS / "plugins.md").read_text()
    specs = _hookspecs()
    assert len(specs) >= 5
    for fn in specs:
        assert f"### `{fn.__name__}`" in guide, f"{fn.__name__} has no section in docs/plugins.md"
        assert _spec_signature(fn) in guide, (
            f"docs/plugins.md shows a stale signature for {fn.__name__}"
        )
        assert fn.__doc__ and len(fn.__doc__.split()) > 10, f"{fn.__name__} needs a real docstring"


def test_documented_hooks_exist():
    guide = (DOCS / "plugins.md").read_text()
    documented = set(re.findall(r"^### `(kez_[a-z_]+)`", guide, re.M))
    assert documented == {fn.__name__ for fn in _hookspecs()}


def _commands(group, ctx, prefix="kez"):
    """Every leaf command, lazy ones included (list_commands/get_command build them)."""
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        path = f"{prefix} {name}"
        if hasattr(cmd, "list_commands"):
            yield from _commands(cmd, typer._click.Context(cmd, info_name=name, parent=ctx), path)
        else:
            yield path, cmd


def test_every_cli_command_is_in_the_reference():
    reference = (DOCS / "cli.md").read_text()
    headings = re.findall(r"^### `([^`]+)`", reference, re.M)
    root = typer.main.get_command(build_app())
    commands = list(_commands(root, typer._click.Context(root, info_name="kez")))
    assert len(commands) >= 10
    for path, cmd in commands:
        matching = [h for h in headings if h == path or h.startswith(path + " ")]
        assert matching, f"`{path}` is missing from docs/cli.md"
        for param in cmd.params:
            opts = [o for o in getattr(param, "opts", []) if o.startswith("-") and o != "--help"]
            if not opts or getattr(param, "param_type_name", "") == "argument":
                continue
            shown = [
                o for o in opts if re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", matching[0])
            ]
            assert shown, f"{path}: option {opts[0]} is not in its docs/cli.md heading"


def test_readme_starts_with_the_two_commands():
    readme = (DOCS.parent / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, re.S)
    assert blocks[0].strip() == "python3 -m pip install uv && python3 -m uv run kez demo"
    assert blocks[1].strip() == "python3 -m pip install uv && python3 -m uv run pytest"
    ci = (DOCS.parent / ".ci" / "run").read_text()
    assert blocks[1].strip() in ci


def _help(argv: list[str], main) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(argv)
    return out.getvalue()


def test_the_readme_server_guide_names_only_flags_that_exist(monkeypatch):
    """Every `--flag` on a `kez-server` or `kez message` line of the root README's
    "Running a kez-server" section, and every flag its text names, is in that command's help."""
    from kez_cli.main import main as kez_main
    from kez_server.cli import main as server_main

    monkeypatch.setenv("COLUMNS", "250")
    readme = (DOCS.parent / "README.md").read_text()
    section = readme.split("## Running a kez-server", 1)[1].split("\n## ", 1)[0]
    helps = {
        "kez-server": _help(["--help"], server_main),
        "kez-server nats-config": _help(["nats-config", "--help"], server_main),
        "kez message send": _help(["message", "send", "--help"], kez_main),
        "kez message listen": _help(["message", "listen", "--help"], kez_main),
    }
    flag = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
    checked = 0
    current = None  # the command of a line that ended with a backslash
    for line in section.splitlines():
        command = current or next(
            (c for c in sorted(helps, key=len, reverse=True) if line.lstrip().startswith(c + " ")),
            None,
        )
        current = command if line.rstrip().endswith("\\") else None
        if command is None:
            continue
        for name in flag.findall(line.split("#", 1)[0]):
            assert re.search(rf"{name}\b", helps[command]), f"{command} has no {name}: {line}"
            checked += 1
    everything = "\n".join(helps.values())
    for name in set(re.findall(r"`(--[a-z][a-z-]+)", section)):
        assert re.search(rf"{name}\b", everything), f"the README names {name}, which no command has"
        checked += 1
    assert checked > 20
