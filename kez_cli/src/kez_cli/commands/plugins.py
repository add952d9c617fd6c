"""`kez plugins`: what is installed, where it came from, and whether it loaded."""

from __future__ import annotations

import attrs
import typer

from kez_core.registry import default_registry

from ..options import JsonOpt
from ..output import State, cell, emit_json, out_console, styled


def plugins(json_: JsonOpt = False) -> None:
    """List every plugin: distribution, version, what it provides, load state."""
    State.json_mode = json_
    registry = default_registry()
    registry.load()
    infos = registry.plugins()
    if json_:
        emit_json([attrs.asdict(info) for info in infos])
        return
    from rich.table import Table

    table = Table("plugin", "distribution", "version", "provides", "state", box=None)
    for info in infos:
        provides = "; ".join(f"{kind.replace('_', ' ')}: {', '.join(names)}" for kind, names in info.provides.items())
        state = styled((info.state, {"loaded": "green", "broken": "red"}.get(info.state, "")))
        if info.error:
            state.append_text(styled((f" ({info.error})", "dim")))
        if not info.core_compatible:
            state.append_text(styled((f" (wants kez-core{info.core_requirement})", "yellow")))
        table.add_row(cell(info.name), cell(info.distribution), cell(info.version), cell(provides or "-"), state)
    out_console.print(table)


def register(app: typer.Typer) -> None:
    app.command("plugins")(plugins)
