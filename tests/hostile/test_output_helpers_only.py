"""No command prints through rich with a string: outside text would be read as markup.

Commands show text with `kez_cli.output.show_line` / `styled` / `cell` /
`note` (which never interpret markup and escape controls); a console's
`print` may only take what those build (rich `Text`, a `Table` of `cell`s)
or nothing. This reads the CLI's source, so a new `out_console.print(f"…")`
fails here before it can crash on a `[/x]`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kez_cli

SOURCES = sorted(Path(kez_cli.__file__).parent.rglob("*.py"))
CONSOLES = {"out_console", "err_console", "console"}


def _string_like(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.JoinedStr)
        or (isinstance(node, ast.Constant) and isinstance(node.value, str))
        or (isinstance(node, ast.BinOp) and (_string_like(node.left) or _string_like(node.right)))
    )


def test_consoles_never_print_strings():
    offenders = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            target = node.func.value
            if node.func.attr != "print" or not (
                isinstance(target, ast.Name) and target.id in CONSOLES
            ):
                continue
            markup = [k for k in node.keywords if k.arg == "markup"]
            if any(_string_like(a) for a in node.args) or markup:
                offenders.append(f"{path.name}:{node.lineno}")
    assert len(SOURCES) > 10
    assert not offenders, f"print through kez_cli.output's helpers instead: {offenders}"
