"""Handing the picture key to the people who may see the face (spec §13, "The picture key").

The key goes in an encrypted `profile_key` message, through the messaging
service and its transports, never in a public object:

- on contact add, to the new contact (`share_with_contact`);
- on a picture change, to every contact that is not blocked and to the
  owner's own other devices (`share_with_everyone`). A removed contact is
  no longer in the list, so the new key never reaches it.

Sending to one recipient failing (no route, no current inbox key, a server
down) is a `KeyShare` with `sent=False` and the error, never an exception:
the caller reports it per recipient and the rest still get their key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import KezError
from .service import OwnProfileStore

if TYPE_CHECKING:
    from ..chat.peers import Peer
    from ..chat.service import MessagingService, Route

OWN_DEVICES = "own devices"  # the `name` of the share to the owner's other devices


@attrs.frozen
class KeyShare:
    """What sending the picture key to one recipient did."""

    name: str  # the contact's name, or OWN_DEVICES
    identity: str
    sent: bool  # at least one device of the recipient got an envelope through a route
    devices: int = 0  # envelopes sent (one per reached inbox key and route)
    error: dict[str, str] | None = None  # the first error, when nothing was sent

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "identity": self.identity,
            "sent": self.sent,
            "devices": self.devices,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


def current_key_body(service: MessagingService) -> dict[str, Any] | None:
    """The `profile_key` body of the picture this device last published, or None when it
    published no scrambled picture (nothing to share)."""
    from .keys import profile_key_body

    own = OwnProfileStore(service.keystore.home, service.identity).load()
    if own is None or own.key is None or own.published_png is None:
        return None
    return profile_key_body(
        service.identity, own.key, hashlib.sha256(own.published_png).hexdigest()
    )


async def _send(
    service: MessagingService, name: str, peer: Peer, body: dict[str, Any], routes: Sequence[Route]
) -> KeyShare:
    try:
        result = await service.send_profile_key(peer, body, routes)
    except KezError as exc:
        return KeyShare(name, peer.identity, False, 0, exc.to_dict())
    sent = sum(1 for d in result.deliveries if d.sent)
    error = None if sent else next((d.error for d in result.deliveries if d.error), None)
    return KeyShare(name, peer.identity, bool(sent), sent, error)


async def share_with_contact(
    service: MessagingService, name: str, peer: Peer, routes: Sequence[Route]
) -> KeyShare | None:
    """Send the current picture key to a contact just added; None when there is no key to send."""
    body = current_key_body(service)
    if body is None:
        return None
    return await _send(service, name, peer, body, routes)


def own_devices_peer(service: MessagingService) -> Peer | None:
    """The owner's own identity as a recipient, with this device's inbox key left out
    (None: no local chain, or no other device with an inbox key)."""
    from ..chat.peers import Peer

    chain = service.sender_chain(service.identity)
    if chain is None:
        return None
    this_device = service.record.key_id
    others = {device: key for device, key in chain.inbox_keys.items() if device != this_device}
    if not others:
        return None
    return Peer(service.identity, attrs.evolve(chain, inbox_keys=others))


async def share_with_everyone(
    service: MessagingService,
    body: dict[str, Any],
    routes: Sequence[Route],
    *,
    own_devices: bool = True,
) -> list[KeyShare]:
    """Send a new picture key to every contact that is not blocked, then to the owner's
    other devices; one `KeyShare` per recipient, failures included."""
    out: list[KeyShare] = []
    for contact in service.contacts():
        if contact.blocked:
            continue
        try:
            peer = await service.resolve_peer(contact.identity)
        except KezError as exc:
            out.append(KeyShare(contact.name, contact.identity, False, 0, exc.to_dict()))
            continue
        out.append(await _send(service, contact.name, peer, body, routes))
    if own_devices:
        own = own_devices_peer(service)
        if own is not None:
            out.append(await _send(service, OWN_DEVICES, own, body, routes))
    return out


__all__ = [
    "OWN_DEVICES",
    "KeyShare",
    "current_key_body",
    "own_devices_peer",
    "share_with_contact",
    "share_with_everyone",
]
