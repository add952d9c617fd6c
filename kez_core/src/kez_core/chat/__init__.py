"""The messaging service (DESIGN §6): conversations, contacts, pins, delivery states and acks.

- `store`: the encrypted local store of one identity (SQLite, two processes safe);
- `peers`: naming a peer (handle, contact, name, id, file) and pinning handles;
- `service`: `MessagingService`, the one API the CLI and a UI call.
- `files`: files over messages (inline, or chunks then a pointer; resumable, SHA-256 checked).
- `safety`: the safety number two people compare in person.
- `listener`: `Listener`, a long-running receiver on many routes (reconnects with backoff), as typed events.
- `routes`: which transports are configured (the default of `send` and `listen`).
"""

from __future__ import annotations

from .listener import Listener, ListenEvent
from .peers import HandleAnswer, HandleDirectory, Peer, PeerChanged, check_handle_chain
from .safety import safety_number
from .service import Delivery, MessagingService, Received, Route, SendResult
from .store import STATES, ChatStore, Contact, Entry

__all__ = [
    "STATES",
    "ChatStore",
    "Contact",
    "Delivery",
    "Entry",
    "HandleAnswer",
    "HandleDirectory",
    "ListenEvent",
    "Listener",
    "MessagingService",
    "Peer",
    "PeerChanged",
    "Received",
    "Route",
    "SendResult",
    "check_handle_chain",
    "safety_number",
]
