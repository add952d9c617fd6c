"""How the CLI talks: data on stdout, messages on stderr, JSON on demand.

Encoded claims and `--json` documents go to stdout untouched (no rich
wrapping, which would break a 400-character compact line); notes, warnings
and errors go to stderr so pipelines stay clean.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from kez_core.errors import KezError

from .state import current_state

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)


class _StateView(type):
    """`State.json_mode` reads and writes the running invocation's CliState (kez_cli.state), not a global."""

    @property
    def json_mode(cls) -> bool:
        return current_state().json_mode

    @json_mode.setter
    def json_mode(cls, value: bool) -> None:
        current_state().json_mode = value


class State(metaclass=_StateView):
    """Per-invocation output mode, set by each command's `--json` flag (kept in ctx.obj)."""


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def emit_text(text: str) -> None:
    """Raw text on stdout, exactly as given (plus a newline if missing)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    err_console.print(f"[dim]kez:[/dim] {message}", markup=True)


def warn(message: str) -> None:
    err_console.print(f"[yellow]kez: warning:[/yellow] {_escape(message)}")


def report_error(exc: KezError) -> None:
    if State.json_mode:
        emit_json(exc.to_dict())
        return
    err_console.print(f"[red bold]error:[/red bold] {_escape(exc.message)}")
    if exc.hint:
        err_console.print(f"[dim]hint:[/dim] {_escape(exc.hint)}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
