"""Per-invocation CLI state, kept in click's context object (`ctx.obj`).

`main()` makes one `CliState` per run and hands it to click as `obj`, so
every command's context carries it and nothing outlives the run: two
in-process `main()` calls (the test suite makes thousands) cannot leak a
`--json` mode into each other. `main()` also makes it the current state for
the code that runs outside any click context, such as reporting an error
after click has returned.
"""

from __future__ import annotations

from contextvars import ContextVar

import attrs
from typer._click.globals import get_current_context  # typer's own click


@attrs.define
class CliState:
    """What one `kez` run has decided about its output."""

    json_mode: bool = False  # set by each command's --json flag; errors are then JSON too


_current: ContextVar[CliState | None] = ContextVar("kez_cli_state", default=None)


def current_state() -> CliState:
    """The running command's state: its click context's object, else the one `main()` made current.

    Code called outside any `main()` (a library caller, a test calling a
    command function directly) gets a fresh default state.
    """
    ctx = get_current_context(silent=True)
    if ctx is not None:
        found = ctx.find_object(CliState)
        if found is not None:
            return found
    state = _current.get()
    if state is None:
        state = CliState()
        _current.set(state)
    return state


def begin(state: CliState) -> object:
    """Make `state` current for one `main()` run; returns the token `end()` takes."""
    return _current.set(state)


def end(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
