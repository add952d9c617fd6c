"""Routes for sending a picture key from `kez contact add` and `kez profile set`, and its report.

Both commands take the transport flags of `kez message send` (`--via`, and
each transport's own flags such as `--inbox-server URL`). Unlike `send`,
having no transport configured is not an error here: the contact is added
or the profile published all the same, and a warning says the key was not
sent. The sending itself is the messaging service's (kez_core.profile.sharing).
"""

from __future__ import annotations

from typing import Any

from kez_core.keys import Signer
from kez_core.keystore import IdentityRecord, Keystore

from .channel_options import TRANSPORT, make_context, split_channel_args
from .output import note, warn
from kez_core.errors import UsageError


def key_routes(
    ctx_args: list[str],
    store: Keystore,
    via: list[str],
    timeout: float,
    record: IdentityRecord,
    signer: Signer,
) -> list[Any]:
    """One Route per `--via` name (or per configured transport; [] when none), ready to send
    as this identity (the transports that prove who is sending get the signer)."""
    from kez_core.chat import Route

    from .commands.message import _as_identity, configured_transports

    positional, flags = split_channel_args(ctx_args, store.registry, TRANSPORT)
    if positional:
        raise UsageError(f"unexpected argument {positional[0]!r}")
    names = [n.strip() for v in via for n in v.split(",") if n.strip()] or configured_transports(
        store.registry, flags
    )
    if not names:
        return []
    channel_ctx = make_context(flags, store.registry, timeout, TRANSPORT)
    _as_identity(channel_ctx, record, signer)
    return [
        Route(name, store.registry.transport(name), channel_ctx) for name in dict.fromkeys(names)
    ]


def report(shares: list[Any]) -> None:
    """One line per recipient on stderr: a note when the key went, a warning when it did not."""
    for share in shares:
        who = f"{share.name} ({share.identity})"
        if share.sent:
            note(f"picture key sent to {who}")
        else:
            error = share.error or {}
            hint = f"; {error['hint']}" if error.get("hint") else ""
            warn(
                f"picture key not sent to {who}: {error.get('message', 'no device reached')}{hint}"
            )
