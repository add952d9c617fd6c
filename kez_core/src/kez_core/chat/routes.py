"""Which transports are "configured": the default of `send` and `listen` when no `--via` is given.

A transport is configured when one of its settings is given, as a flag
among the command's flags or as its environment variable (e.g. `--nats-url`
or `KEZ_NATS_URL` for nats, `--transport-relay` or `KEZ_TRANSPORT_RELAYS`
for nostr). One rule in one place, so sending and listening agree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any


def configured_transports(
    registry: Any, flags: Sequence[str], environ: Mapping[str, str] | None = None
) -> list[str]:
    """Names of the transports that have a setting given (a flag among `flags`, or its variable)."""
    env = os.environ if environ is None else environ
    names = []
    for transport in registry.transports():
        for option in getattr(transport, "options", ()) or ():
            given = any(f == option.flag or f.startswith(option.flag + "=") for f in flags)
            if given or env.get(option.env):
                names.append(transport.name)
                break
    return names
