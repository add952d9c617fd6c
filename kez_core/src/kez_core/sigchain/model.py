"""What a sigchain is made of (one `Link` per line) and what validating it yields (`ChainState`).

The state is everything a reader needs to judge the next link and to answer
"which keys and claims does this identity have now": the current primary,
devices, recovery keys, the current inbox key of each device, retired
(rotated-away) primaries, and one small record per claim. It never holds the
links themselves, so validating a chain keeps memory proportional to the
number of keys and claims, not to the number of links.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import attrs

from ..signed import SignedObject
from ..timefmt import parse_time

KIND = "link"
LINK_TYPE = "kez.link"
ACCEPT_TYPE = "kez.accept"

OP_CLAIM = "claim"
OP_REVOKE = "revoke"
OP_ADD_DEVICE = "add_device"
OP_REMOVE_DEVICE = "remove_device"
OP_ADD_RECOVERY = "add_recovery"
OP_ROTATE = "rotate"
OP_ADD_INBOX = "add_inbox"

# op -> the body fields it must have (and may only have)
OP_FIELDS: dict[str, frozenset[str]] = {
    OP_CLAIM: frozenset({"claim"}),
    OP_REVOKE: frozenset({"claim_id", "reason"}),
    OP_ADD_DEVICE: frozenset({"device", "name", "accept"}),
    OP_REMOVE_DEVICE: frozenset({"device"}),
    OP_ADD_RECOVERY: frozenset({"key"}),
    OP_ROTATE: frozenset({"new_primary", "accept"}),
    OP_ADD_INBOX: frozenset({"key", "device", "expires_at"}),
}
OPS = tuple(OP_FIELDS)

# Payload fields every link has, besides `type` and `version`.
LINK_FIELDS = ("seqno", "prev", "created_at", "op", "body")

MAX_DEVICE_NAME = 64
MAX_REASON = 1024


class Link(NamedTuple):
    """One validated (or just built) link: the signed object and what was read from it.

    Immutable. A named tuple rather than an attrs class: one is made per line
    validated, and a tuple is built several times faster.
    """

    obj: SignedObject
    id: str
    seqno: int
    prev: str | None
    created_at: str
    op: str
    body: dict[str, Any]
    signer: str
    canonical: bytes  # JCS of the whole object, without the newline

    @property
    def line(self) -> bytes:
        """The JSON Lines form: JCS of the object and one newline."""
        return self.canonical + b"\n"


@attrs.define(slots=True)
class ClaimRecord:
    """A claim added by a `claim` link, and its revocation if any."""

    claim_id: str
    subject: str
    primary: str  # key that signed the claim (the primary when it was added)
    added_by: str  # key that signed the claim link (the primary or a device)
    seqno: int  # seqno of the claim link
    added_at: str  # created_at of the claim link
    created_at: str  # the claim's own created_at
    expires_at: str | None
    revoked_seqno: int | None = None
    revoked_at: str | None = None
    revoked_by: str | None = None
    revocation_reason: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_seqno is not None


@attrs.define(slots=True)
class InboxKey:
    """The current inbox (X25519) key of one device; a later add_inbox replaces it."""

    key: str  # x25519:<64 hex>
    device: str
    expires_at: str
    seqno: int
    added_by: str

    def expired(self, at: datetime) -> bool:
        return parse_time(self.expires_at) <= at


@attrs.define(slots=True)
class RetiredKey:
    """A primary that was rotated away: it signs nothing after `seqno`."""

    key: str
    seqno: int  # seqno of the rotate link
    rotated_at: str  # created_at of the rotate link
    successor: str  # the new primary
    rotated_by: str  # the key that signed the rotate (the old primary or a recovery key)


@attrs.define(slots=True)
class ChainState:
    """The state of an identity after its last valid link. Treat as read-only."""

    identity_id: str
    current_primary: str
    head: str  # id of the last link
    length: int  # number of links (= seqno of the last link)
    last_created_at: str
    devices: dict[str, str] = attrs.field(factory=dict)  # device key id -> name
    recovery_keys: set[str] = attrs.field(factory=set)
    inbox_keys: dict[str, InboxKey] = attrs.field(factory=dict)  # device (or primary) -> inbox key
    claims: dict[str, ClaimRecord] = attrs.field(factory=dict)  # claim id -> record, in chain order
    retired: dict[str, RetiredKey] = attrs.field(factory=dict)  # rotated-away primaries

    def role_of(self, key: str) -> str | None:
        """`primary`, `device`, `recovery`, `retired`, or None for a key the chain does not know."""
        if key == self.current_primary:
            return "primary"
        if key in self.devices:
            return "device"
        if key in self.recovery_keys:
            return "recovery"
        if key in self.retired:
            return "retired"
        return None

    def primaries(self) -> list[str]:
        """Every key that has been the primary, oldest first; the last is the current one."""
        return [r.key for r in sorted(self.retired.values(), key=lambda r: r.seqno)] + [
            self.current_primary
        ]

    def active_claims(self) -> list[ClaimRecord]:
        """Claims not revoked (expiry is judged at check time, see `claim_statuses`)."""
        return [c for c in self.claims.values() if not c.revoked]

    def current_inbox_keys(self, at: datetime) -> list[InboxKey]:
        """Inbox keys of active devices (and the primary) not expired at `at`, newest first."""
        keys = [k for k in self.inbox_keys.values() if not k.expired(at)]
        return sorted(keys, key=lambda k: k.seqno, reverse=True)
