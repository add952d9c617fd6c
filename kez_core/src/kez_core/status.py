"""Verification statuses and the typed result of checking one claim.

The status names are fixed by the design (§5); `unreachable` is kept apart
from `invalid` everywhere, because a network failure says nothing about
whether a proof is honest.
"""

from __future__ import annotations

import enum
import functools
from datetime import datetime
from typing import Any

import attrs

from .timefmt import format_time, parse_time


class Status(enum.StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    REVOKED = "revoked"
    EXPIRED = "expired"
    UNREACHABLE = "unreachable"
    NOT_FOUND = "not_found"
    FORK = "fork"
    SUPERSEDED = "superseded"


@attrs.frozen
class ClaimCheck:
    """The outcome of checking one claim, with the reason in words and what was read."""

    status: Status
    reason: str
    checked_at: datetime
    source: str = ""
    primary: str | None = None
    subject: str | None = None
    claim_id: str | None = None
    created_at: str | None = None
    expires_at: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.VALID


_new = object.__new__
_set = object.__setattr__  # what the generated __init__ of a frozen attrs class calls


def claim_check(
    status: Status,
    reason: str,
    checked_at: datetime,
    source: str,
    primary: str | None,
    subject: str | None,
    claim_id: str | None,
    created_at: str | None,
    expires_at: str | None,
) -> ClaimCheck:
    """`ClaimCheck(...)` with every field given, for the per-claim hot path.

    The same object as the constructor builds, without its per-field bound
    setter: ClaimCheck has no validators, converters or post-init (a test
    pins its fields, so a new one shows up there).
    """
    check = _new(ClaimCheck)
    _set(check, "status", status)
    _set(check, "reason", reason)
    _set(check, "checked_at", checked_at)
    _set(check, "source", source)
    _set(check, "primary", primary)
    _set(check, "subject", subject)
    _set(check, "claim_id", claim_id)
    _set(check, "created_at", created_at)
    _set(check, "expires_at", expires_at)
    return check


@functools.cache
def _converter() -> Any:
    """cattrs, set up on first use: a command that prints no JSON does not pay its import (issue 16)."""
    import cattrs

    converter = cattrs.Converter()
    converter.register_unstructure_hook(datetime, format_time)
    converter.register_structure_hook(datetime, lambda value, _: parse_time(value))
    return converter


def to_json(result: Any) -> Any:
    """Plain JSON-ready data for any result model (what `--json` prints)."""
    return _converter().unstructure(result)
