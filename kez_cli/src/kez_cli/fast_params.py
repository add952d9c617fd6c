"""Text parameters that do not import pydantic.

typer (0.2x) turns every command-line value into its Python type with a
pydantic TypeAdapter, built on first use; the first one imports pydantic
and pydantic-core, about 60 ms, a quarter of what `kez claim verify` may
take (issue 16). Most KEZ parameters are plain text (`str`, `str | None`,
`list[str]`), for which that adapter does nothing but `str(value)`, or
flags, whose value is already a bool. This gives those parameters a
coercion that does the same without pydantic (a flag's value that is not a
bool, e.g. from an environment variable, still goes to typer's);
everything else (numbers with bounds, enums, paths, custom parsers) keeps
typer's own.

It sets typer's per-parameter coercion slot (`_runtime_param`), which
typer fills lazily itself. Should a typer release rename it, `speed_up`
changes nothing and typer's coercion runs as before: slower, never wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args, get_origin

try:
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer.core import _TyperParameter
except ImportError:  # a typer without this layer: nothing to speed up
    RuntimeParam = None  # type: ignore[assignment,misc]
    _TyperParameter = None  # type: ignore[assignment,misc]

TEXT, TEXTS, FLAG = "text", "texts", "flag"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class _PlainParam(RuntimeParam):  # type: ignore[misc,valid-type]
        """`str` and `list[str]` values converted as typer's own adapter does (`str(value)`); bool flags kept."""

        kind: str = TEXT

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.kind == TEXTS:
                items = value if isinstance(value, (list, tuple)) else [value]
                return [_text(item) for item in items]
            if self.kind == FLAG:
                if isinstance(value, bool):
                    return value
                return build_runtime_param(param.type_descriptor)._coerce_value(
                    value, param=param, ctx=ctx
                )
            return _text(value)


def _kind(param: Any) -> str | None:
    """TEXT, TEXTS or FLAG for a plain parameter; None for anything else (left to typer)."""
    descriptor = getattr(param, "type_descriptor", None)
    info = getattr(descriptor, "parameter_info", None)
    if descriptor is None or info is None or getattr(info, "parser", None) is not None:
        return None
    if getattr(descriptor, "file_annotation", None) is not None:
        return None
    annotation = descriptor.annotation
    if annotation is str:
        return TEXT
    if annotation is bool:
        return FLAG
    if get_origin(annotation) is list and get_args(annotation) == (str,):
        return TEXTS
    return None


def speed_up(command: Any, ctx: Any) -> None:
    """Give every plain parameter of `command` and its sub-commands, `--help` included, the pydantic-free coercion."""
    if RuntimeParam is None:
        return
    get_help_option = getattr(command, "get_help_option", None)
    help_option = (
        get_help_option(ctx) if get_help_option is not None else None
    )  # made on first use, then kept
    for param in [
        *getattr(command, "params", ()),
        *([help_option] if help_option is not None else []),
    ]:
        if (
            not isinstance(param, _TyperParameter)
            or getattr(param, "_runtime_param", "absent") is not None
        ):
            continue  # not typer's, already built, or a typer without the slot
        kind = _kind(param)
        if kind is not None:
            param._runtime_param = _PlainParam(
                parameter_info=param.type_descriptor.parameter_info,
                annotation=param.type_descriptor.annotation,
                kind=kind,
            )
    for sub in getattr(command, "commands", {}).values():
        speed_up(sub, ctx)
