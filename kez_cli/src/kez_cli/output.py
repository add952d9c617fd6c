"""How the CLI talks: data on stdout, messages on stderr, JSON on demand.

Encoded claims and `--json` documents go to stdout untouched (no rich
wrapping, which would break a 400-character compact line); notes, warnings
and errors go to stderr so pipelines stay clean.

Everything a command shows goes through `show_line()`, `styled()`, `cell()`,
`note()`, `warn()` or `emit_json()`, never `console.print` of an f-string:
text that came from outside (claims, chains, servers, plugins, messages)
can hold rich markup (`[/x]` ended commands in a traceback) and control
characters (ESC sequences rewrite lines). These helpers never interpret
markup, and they pass every string through `kez_core.safetext`, so a
command cannot forget to (docs/cli.md, "Text from outside").
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from kez_core.errors import KezError
from kez_core.safetext import json_text, visible

from .state import current_state

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)

#: A piece of a line: plain text, or (text, rich style). The text is never markup.
Part = str | tuple[str, str]


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


def styled(*parts: Part, multiline: bool = False) -> Text:
    """One rich Text from parts; every string made visible (`safetext.visible`), none read as markup.

    Styles come only from the (text, style) tuples our own code writes, so a
    subject like `[red]valid[/]` shows as those characters.
    """
    text = Text()
    for part in parts:
        value, style = (part, "") if isinstance(part, str) else part
        text.append(visible(str(value), multiline=multiline), style=style)
    return text


def cell(value: Any, style: str = "") -> Text:
    """A table cell holding `value` as plain, visible text."""
    return styled((str(value), style))


def show_line(*parts: Part, multiline: bool = False) -> None:
    """Print one line of parts on stdout (see `styled`)."""
    out_console.print(styled(*parts, multiline=multiline))


def emit_json(data: Any) -> None:
    """One JSON document on stdout; controls, bidi and lone surrogates as `\\uXXXX` escapes."""
    sys.stdout.write(json_text(data) + "\n")
    sys.stdout.flush()


def emit_json_line(data: Any) -> None:
    """One JSON document on one line (a stream of them is JSON Lines)."""
    sys.stdout.write(json_text(data, indent=None) + "\n")
    sys.stdout.flush()


def emit_text(text: str) -> None:
    """Raw text on stdout, exactly as given (plus a newline if missing): our own encoded data only."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    err_console.print(styled(("kez:", "dim"), " ", message))


def warn(message: str) -> None:
    err_console.print(styled(("kez: warning:", "yellow"), " ", message))


def report_error(exc: KezError) -> None:
    if State.json_mode:
        emit_json(exc.to_dict())
        return
    err_console.print(styled(("error:", "red bold"), " ", exc.message))
    if exc.hint:
        err_console.print(styled(("hint:", "dim"), " ", exc.hint))
