"""Options shared by many commands."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
IdentityOpt = Annotated[
    str | None, typer.Option("--identity", "-i", help="Identity name (default identity if omitted).")
]
