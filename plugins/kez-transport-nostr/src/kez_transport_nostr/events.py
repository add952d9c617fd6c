"""The wire form: one envelope is one nostr event signed by a key used once.

An envelope for routing id R travels as the NIP-01 event

    {"kind": 4243, "tags": [["p", R]], "content": "<envelope text>",
     "created_at": <now>, "pubkey": <one-time key>, "id": …, "sig": …}

- kind 4243 is a regular event (1000-9999): relays store it and hand it to
  later subscribers, so a recipient that was offline still gets it (kez-chat
  used 4243 for messages and 4244 for acks; acks are now encrypted messages
  too, so only 4243 is used);
- the key is generated for this one event and thrown away: the sender's
  nostr or KEZ identity never signs anything a relay sees, and two envelopes
  from one sender are not linked by their author;
- `created_at` is the sending time. NIP-59 randomises it backwards to hide
  when a message was written, but a relay sees when the event arrives anyway,
  and an event dated before a listener's `since` would be missed by it;
- the `p` tag is the routing id (not a nostr public key), which relays index
  so a recipient can ask for `#p`.

Whatever a relay hands back is checked again here (`rejection`): a relay
may be hostile or broken, and one forged event must not reach the inbox.
"""

from __future__ import annotations

import time
from typing import Any

from kez_core.builtins.bip340 import BIP340
from kez_core.nostr_event import sign_event, verify_event

# the transport module stays light to import, so the limit lives there
from .transport import MAX_ENVELOPE

ENVELOPE_KIND = 4243
MAX_CONTENT = MAX_ENVELOPE  # DESIGN §6: an event's content is at most 32 KiB


def envelope_event(routing_id: str, envelope: str, created_at: int | None = None) -> dict[str, Any]:
    """The signed event carrying `envelope` to `routing_id`, by a fresh one-time key."""
    secret = BIP340.generate_secret()
    return sign_event(
        secret,
        ENVELOPE_KIND,
        envelope,
        [["p", routing_id]],
        int(time.time()) if created_at is None else created_at,
    )


def rejection(event: Any, routing_id: str, since: int) -> str | None:
    """Why `event` is not an envelope for `routing_id` sent at or after `since`, or None."""
    if not isinstance(event, dict):
        return "not an event object"
    if not verify_event(event):  # also checks every field's type
        return "bad id or signature"
    if event["kind"] != ENVELOPE_KIND:
        return f"of another kind than {ENVELOPE_KIND}"
    if not any(len(tag) >= 2 and tag[0] == "p" and tag[1] == routing_id for tag in event["tags"]):
        return "without the p tag of this routing id"
    if event["created_at"] < since:
        return "older than the lookback"
    content = event["content"]
    if not content.isascii():
        return "with content that is not ASCII"
    if len(content) > MAX_CONTENT:
        return f"with content over {MAX_CONTENT} characters"
    return None
