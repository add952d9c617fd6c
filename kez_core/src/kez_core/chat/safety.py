"""The safety number of a conversation: what two people read aloud to each other.

Before a first message to a handle, a client shows who the handle names
(from verification) and this number. Both sides compute the same digits from
the two identity ids alone, so comparing them in person (or on a call)
detects a server that answered a handle with someone else's identity.
Identity ids survive key rotations, so the number stays the same for the
life of the two identities. Format: docs/spec.md, "Safety numbers".
"""

from __future__ import annotations

import hashlib

from ..keys import normalize_key_id

_DOMAIN = b"kez-safety-number-v1\n"
_GROUPS = 12


def safety_number(mine: str, theirs: str) -> str:
    """Twelve groups of five digits, the same whichever side computes it."""
    ids = sorted([normalize_key_id(mine), normalize_key_id(theirs)])
    digest = hashlib.sha512(_DOMAIN + "\n".join(ids).encode("ascii")).digest()
    groups = [
        f"{int.from_bytes(digest[i * 5 : i * 5 + 5], 'big') % 100000:05d}" for i in range(_GROUPS)
    ]
    return " ".join(groups)
