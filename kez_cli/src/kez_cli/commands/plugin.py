"""`kez plugin new`: start a third-party plugin distribution (kez_cli.scaffold does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..options import JsonOpt
from ..output import State, emit_json, show_line


def new(
    kind: Annotated[
        str, typer.Argument(help="channel, transport, encoding or key.", show_default=False)
    ],
    name: Annotated[
        str, typer.Argument(help="The plugin's name: lower-case letters and digits (e.g. web).")
    ],
    dir_: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Folder to create (default: ./kez-<kind>-<name>); must be new or empty."
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Write a plugin distribution: pyproject with the entry point, the plugin module, README, contract tests."""
    from ..scaffold import new_plugin

    State.json_mode = json_
    done = new_plugin(kind, name, dir_)
    if json_:
        emit_json(
            {
                "kind": done.kind,
                "name": done.name,
                "distribution": done.distribution,
                "package": done.package,
                "path": str(done.path),
                "files": list(done.files),
            }
        )
        return
    show_line(f"wrote {done.distribution} in {done.path}:")
    for rel in done.files:
        show_line(f"  {rel}")
    show_line(
        "next: pip install -e '.[test]' in that folder, then `kez plugins --load` and `pytest`"
    )


def register(main_app: typer.Typer) -> None:
    """Add `kez plugin` to a freshly built root app (a new group each time: `build_app`
    runs once per in-process `main()`, and a shared group would collect duplicates)."""
    app = typer.Typer(help="Start a new plugin distribution of your own.", no_args_is_help=True)
    app.command("new")(new)
    main_app.add_typer(app, name="plugin")
