"""End-to-end encrypted messages between KEZ identities (spec section 12).

- `message`: the signed plaintext (`kez: "message"`) and its body kinds;
- `padding`: size buckets, so lengths say little;
- `envelope`: HPKE sealing to one inbox key, the `kez:e1:` text form, routing ids;
- `replay`: the persistent store of accepted message ids and the time window;
- `keyring`: a device's inbox secrets on disk, kept while messages may still arrive;
- `mailbox`: the whole send and receive paths, and the sender check against a chain.

Transports (NATS, nostr, the server's inbox) only move envelope texts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Names load on first use (PEP 562): transports import `messaging.envelope`,
# and that must not pull in the chain, keystore and replay code at CLI start.
_WHERE = {
    "BUCKETS": "padding",
    "EnvelopeError": "errors",
    "InboxAuthError": "inbox_auth",
    "InboxKeysExpired": "errors",
    "InboxKeyRecord": "keyring",
    "InboxKeyring": "keyring",
    "InboxSecret": "envelope",
    "MAX_AGE": "replay",
    "MAX_AHEAD": "replay",
    "MAX_MESSAGE_BYTES": "message",
    "Message": "message",
    "MessageRefused": "errors",
    "MessageTooLarge": "errors",
    "PREFIX": "envelope",
    "ReplayStore": "replay",
    "ack_body": "message",
    "check_routing_id": "envelope",
    "check_sender": "mailbox",
    "check_window": "replay",
    "create_message": "message",
    "inbox_key_id": "envelope",
    "message_from_json": "message",
    "open_envelope": "mailbox",
    "open_envelopes": "mailbox",
    "open_sealed": "envelope",
    "parse_inbox_auth": "inbox_auth",
    "pad": "padding",
    "parse_inbox_key": "envelope",
    "read_message": "message",
    "routing_id": "envelope",
    "seal": "envelope",
    "seal_for_devices": "mailbox",
    "seal_message": "mailbox",
    "sign_inbox_request": "inbox_auth",
    "text_body": "message",
    "unpad": "padding",
    "verify_inbox_auth": "inbox_auth",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .envelope import (
        PREFIX,
        InboxSecret,
        check_routing_id,
        inbox_key_id,
        open_sealed,
        parse_inbox_key,
        routing_id,
        seal,
    )
    from .errors import EnvelopeError, InboxKeysExpired, MessageRefused, MessageTooLarge
    from .inbox_auth import InboxAuthError, parse_inbox_auth, sign_inbox_request, verify_inbox_auth
    from .keyring import InboxKeyRecord, InboxKeyring
    from .mailbox import (
        check_sender,
        open_envelope,
        open_envelopes,
        seal_for_devices,
        seal_message,
    )
    from .message import (
        MAX_MESSAGE_BYTES,
        Message,
        ack_body,
        create_message,
        message_from_json,
        read_message,
        text_body,
    )
    from .padding import BUCKETS, pad, unpad
    from .replay import MAX_AGE, MAX_AHEAD, ReplayStore, check_window

__all__ = [
    "BUCKETS",
    "MAX_AGE",
    "MAX_AHEAD",
    "MAX_MESSAGE_BYTES",
    "PREFIX",
    "EnvelopeError",
    "InboxAuthError",
    "InboxKeysExpired",
    "InboxKeyRecord",
    "InboxKeyring",
    "InboxSecret",
    "Message",
    "MessageRefused",
    "MessageTooLarge",
    "ReplayStore",
    "ack_body",
    "check_routing_id",
    "check_sender",
    "check_window",
    "create_message",
    "inbox_key_id",
    "message_from_json",
    "open_envelope",
    "open_envelopes",
    "open_sealed",
    "parse_inbox_auth",
    "pad",
    "parse_inbox_key",
    "read_message",
    "routing_id",
    "seal",
    "seal_for_devices",
    "seal_message",
    "sign_inbox_request",
    "text_body",
    "unpad",
    "verify_inbox_auth",
]
