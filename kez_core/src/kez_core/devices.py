"""A second device of an identity: a keystore identity whose key the chain lists as a device.

`kez sigchain add-device` (on the primary) lists the device key in the
chain; `join_identity` (on the device) then makes the device's keystore
record speak for that chain: its `identity_id` becomes the chain's, so the
device publishes its own inbox key (`add_inbox` signed by the device key),
receives messages for the identity, and sends as it (docs/spec.md §12,
"Devices"). Only a key the chain lists as a current device may join: the
chain, not the device, says who belongs.
"""

from __future__ import annotations

from .errors import StoreError
from .keystore import IdentityRecord, Keystore


def join_identity(keystore: Keystore, name: str, identity_id: str) -> IdentityRecord:
    """Make keystore identity `name` a device of `identity_id`, whose chain is in the local
    cache (`kez sigchain import`); StoreError unless that chain lists `name`'s key as a device."""
    from .chat.peers import cached_chain

    record = keystore.get(name)
    chain = cached_chain(keystore, identity_id)
    if chain is None:
        raise StoreError(
            f"no local chain for {identity_id}",
            hint="import it first: `kez sigchain import CHAIN_FILE` (exported on the primary)",
        )
    if chain.role_of(record.key_id) != "device":
        raise StoreError(
            f"the chain of {identity_id} does not list {record.key_id} as a current device",
            hint="on the primary: `kez sigchain add-device --name NAME --device-key FILE`, then export the chain again",
        )
    return keystore.set_identity_id(record.name, chain.identity_id)
