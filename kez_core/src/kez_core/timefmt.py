"""RFC 3339 timestamps (UTC, `Z`, second precision) and human durations.

Signed objects carry times as text so that the signed bytes never depend on a
platform's float formatting. Only one form is written; reading accepts only
that form too, because a second spelling of the same instant would make two
byte-different claims mean the same thing.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from .errors import DecodeError

_RFC3339_Z = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z\Z")
_DURATION = re.compile(r"^\s*([0-9]+)\s*([smhdwy])\s*\Z")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
MAX_DURATION_YEARS = 1000
MAX_DURATION = timedelta(days=365 * MAX_DURATION_YEARS)  # so `now() + duration` stays a real date


# How far ahead of the reader's clock a signed time may be (a link's created_at, a
# claim's created_at, a message's created_at): clocks disagree by seconds, not
# minutes, and anything later is refused. One constant, so every reader agrees.
MAX_CLOCK_SKEW = timedelta(minutes=5)

_last_now: tuple[int, datetime] = (0, datetime.fromtimestamp(0, UTC))


def now() -> datetime:
    """The current time in UTC, truncated to whole seconds."""
    global _last_now
    second = int(time.time())
    last = _last_now
    if last[0] == second:  # datetimes are immutable: one object per second serves every caller
        return last[1]
    current = datetime.fromtimestamp(second, UTC)
    _last_now = (second, current)
    return current


def format_time(when: datetime) -> str:
    """`2026-11-25T10:00:00Z` for an aware datetime (converted to UTC, seconds kept)."""
    if when.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC)")
    t = when.astimezone(UTC)
    # an f-string: a quarter of strftime's cost, the same text for years 1000-9999
    if t.year < 1000:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{t.year}-{t.month:02}-{t.day:02}T{t.hour:02}:{t.minute:02}:{t.second:02}Z"


_RFC3339_Z_MATCH = _RFC3339_Z.match


def parse_time(text: object, *, field: str = "time") -> datetime:
    """Parse the one accepted form `YYYY-MM-DDTHH:MM:SSZ`; anything else is a DecodeError."""
    if type(text) is str and _RFC3339_Z_MATCH(text):
        # The pattern admits only this exact form, which `fromisoformat` reads (in C)
        # as the same aware UTC datetime; it refuses what `datetime()` refuses.
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass  # not a real date: the path below gives the message
    if not isinstance(text, str):
        raise DecodeError(f"{field} must be a string like 2026-01-31T12:00:00Z")
    match = _RFC3339_Z.match(text)
    if not match:
        raise DecodeError(
            f"{field} {text!r} is not RFC 3339 UTC with Z and second precision",
            hint="write it like 2026-01-31T12:00:00Z",
        )
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise DecodeError(f"{field} {text!r} is not a real date: {exc}") from exc


def parse_duration(text: str) -> timedelta:
    """`90d`, `12h`, `1y`, `2w`, `30m`, `45s` → timedelta (a year is 365 days), at most 1000y.

    The cap keeps every expiry computed from a duration inside the dates
    Python (and RFC 3339) can write; beyond it, leave the expiry out.
    """
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match:
        raise DecodeError(
            f"duration {text!r} not understood", hint="use a number and a unit: 90d, 12h, 2w, 1y"
        )
    too_long = DecodeError(
        f"duration {text[:40]!r} is longer than the maximum, {MAX_DURATION_YEARS}y",
        hint="give a shorter one, or none for no expiry",
    )
    if (
        len(match.group(1)) > 12
    ):  # more than any timedelta holds; int() of huge text is slow or refused
        raise too_long
    amount, unit = int(match.group(1)), match.group(2)
    if amount <= 0:
        raise DecodeError(f"duration {text!r} must be positive")
    seconds = amount * _UNIT_SECONDS[unit]
    if seconds > MAX_DURATION.total_seconds():
        raise too_long
    return timedelta(seconds=seconds)
