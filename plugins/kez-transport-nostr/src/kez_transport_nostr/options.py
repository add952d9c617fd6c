"""The transport's settings: which relays, and how far back a subscription looks.

The flags are `--transport-relay` and `--transport-since`, not the nostr
channel's `--relay`: the CLI merges the flags of every channel and
transport, and where proofs are published and where envelopes travel are
separate choices (a private relay for messages, public ones for proofs).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from kez_core.errors import DecodeError, TransportError
from kez_core.protocols import ChannelContext, ChannelOption
from kez_core.timefmt import parse_duration

DEFAULT_SINCE = "48h"
# The seeds' default pool (000: "was 3, now 5"). Only used when no relay is
# configured at all; tests always pass loopback relays and never reach these.
DEFAULT_RELAYS: tuple[str, ...] = (
    "wss://relay.damus.io",
    "wss://nos.lol",
    "wss://relay.nostr.band",
    "wss://relay.snort.social",
    "wss://nostr.wine",
)

RELAYS_OPTION = ChannelOption(
    name="nostr_transport_relays",
    flag="--transport-relay",
    env="KEZ_TRANSPORT_RELAYS",
    help="Nostr relay (ws:// or wss://) that carries message envelopes; "
    "repeat the flag, or separate with commas in the variable (default: five public relays).",
    default=DEFAULT_RELAYS,
    multiple=True,
)
SINCE_OPTION = ChannelOption(
    name="nostr_transport_since",
    flag="--transport-since",
    env="KEZ_TRANSPORT_SINCE",
    help="How far back a nostr subscription asks relays for stored envelopes (e.g. 48h, 7d).",
    default=DEFAULT_SINCE,
)

RELAY_HINT = (
    "pass --transport-relay wss://… (repeatable) or set KEZ_TRANSPORT_RELAYS=wss://a,wss://b"
)


def relay_urls(ctx: ChannelContext) -> list[str]:
    """The configured relay URLs, in order, without blanks and duplicates.

    `DEFAULT_RELAYS` when the option is absent (a library caller that set
    nothing). TransportError when it is set but empty, or one is not a
    ws:// or wss:// URL: a transport with nowhere to send must say so before
    it tries anything. `ctx.options["nostr_transport_relays"]` may be a
    sequence of URLs or one string with commas between them (the
    environment variable's form).
    """
    from kez_channel_nostr.channel import bad_relay_url

    value = ctx.options.get(RELAYS_OPTION.name, DEFAULT_RELAYS)
    items: Iterable[Any] = () if value is None else [value] if isinstance(value, str) else value
    urls: list[str] = []
    for item in items:
        for part in str(item).split(","):
            url = part.strip()
            if url and url not in urls:
                urls.append(url)
    if not urls:
        raise TransportError("no relay configured for the nostr transport", hint=RELAY_HINT)
    bad = [f"{url[:120]!r} {problem}" for url in urls if (problem := bad_relay_url(url))]
    if bad:
        raise TransportError(
            "bad relay address for the nostr transport: " + "; ".join(bad), hint=RELAY_HINT
        )
    return urls


def lookback(ctx: ChannelContext) -> timedelta:
    """How far back subscriptions look: `nostr_transport_since` (`48h`, a timedelta, or seconds)."""
    value = ctx.options.get(SINCE_OPTION.name)
    if value is None:
        value = DEFAULT_SINCE
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        try:
            return parse_duration(str(value).strip())
        except DecodeError as exc:
            raise DecodeError(
                f"--transport-since: {exc.message}",
                hint="use a number and a unit, e.g. 48h or 7d (KEZ_TRANSPORT_SINCE)",
            ) from None
    if not seconds > 0:
        raise DecodeError(f"--transport-since must be positive, not {value!r}")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise DecodeError(f"--transport-since {value!r} is too long") from None
