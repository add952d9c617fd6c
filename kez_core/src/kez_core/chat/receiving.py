"""What a receiving program does around `MessagingService` and `Listener`, for any caller.

`kez message listen`, `kez message open` and a UI share these rules, so they
live here rather than in the CLI:

- `received_json(received)`: the JSON form of one opened envelope. It never
  holds a picture key (a `profile_key` message's `key`), so no renderer can
  show or log one by mistake.
- `counts_as_message(event)`: what `--count N` counts. A file counts once,
  when it is complete (or found corrupt), not per chunk; acks count; blocked
  senders' messages, refusals and transport events do not.
- `share_new_inbox_key(service, servers)`: renew the inbox key on its last
  day (`MessagingService.renew_inbox`) and push the chain to the kez-servers
  senders read it from, so they seal to the new key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ..sigserver_client import PushResult
    from .listener import ListenEvent
    from .service import MessagingService, Received


def received_json(received: Received) -> dict[str, Any]:
    """The JSON of one received envelope (`kez message open` / `listen` print it)."""
    message = received.message
    out: dict[str, Any] = {
        "message_id": message.id,
        "from": message.sender_identity,
        "sender_key": message.sender,
        "created_at": message.signed.payload["created_at"],
        "body": message.body,
        "sender_checked": received.sender_checked,
        "kind": received.kind,
    }
    if received.kind == "ack":
        out["delivered"] = list(received.delivered)
    if received.file is not None:
        out["file"] = received.file
    if received.kind in ("profile_key", "refused"):  # never print the picture key itself
        out["body"] = {k: v for k, v in message.body.items() if k != "key"}
    if received.stranger:
        out["stranger"] = True
    if not received.sender_checked:
        out["sender_note"] = (
            f"the sender's chain is not known here: `kez sigchain pull {message.sender_identity}` to check"
        )
    return out


def counts_as_message(event: ListenEvent) -> bool:
    """True when `event` is one message for a "stop after N messages" limit (see the module docstring)."""
    received = event.received
    if event.kind != "received" or received is None or received.kind == "dropped":
        return False
    state = (received.file or {}).get("state")
    if received.kind == "file_chunk":  # plumbing: a message of its own only once the file is done
        return state in ("complete", "corrupt")
    return state != "receiving"  # a file message whose chunks are still coming counts once finished


@attrs.frozen
class InboxRenewal:
    """A new inbox key was published: its id, and what each kez-server said to the chain push."""

    key: str
    servers: tuple[str, ...]  # empty: nobody was told; the owner shares the chain by hand
    pushes: tuple[PushResult, ...] = ()


async def share_new_inbox_key(
    service: MessagingService, servers: Sequence[str], *, timeout: float = 10.0
) -> InboxRenewal | None:
    """Renew the inbox key when the newest one expires within a day, then push the chain to
    `servers`; None when no key was due. Network trouble is in `pushes`, never raised."""
    key = service.renew_inbox()
    if key is None:
        return None
    if not servers:
        return InboxRenewal(key, ())
    from ..sigserver_client import push_all
    from .peers import read_cached

    lines = read_cached(service.keystore, service.identity)
    pushes = await push_all(servers, service.identity, lines, timeout)
    return InboxRenewal(key, tuple(servers), tuple(pushes))
