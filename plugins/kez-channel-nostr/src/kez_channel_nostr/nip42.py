"""NIP-42: answering a relay's `["AUTH", <challenge>]` with a signed kind-22242 event.

Relays that restrict reading or writing (damus.io for DMs, paid relays)
send a challenge and refuse requests (`auth-required:` / `restricted:`)
until the client proves a key. Which key is the caller's choice, so the
relay client (`relay.py`) takes an `AuthSigner`:

- `one_time_signer()` signs each challenge with a key made for it and
  then forgotten: the nostr transport sends envelopes by one-time keys,
  and authenticating with a lasting key would tie them together again;
- `key_signer(secret)` signs with one lasting key: publishing a proof or a
  relay list as the account it belongs to, for relays that only take an
  account's own events after it authenticated.

Light to import (no websockets): the transport builds signers in `send`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kez_core.plugin import BIP340, sign_event

AUTH_KIND = 22242

# (relay URL as dialled, challenge) -> the signed event for `["AUTH", event]`
AuthSigner = Callable[[str, str], dict[str, Any]]


def auth_event(
    secret: bytes, relay_url: str, challenge: str, created_at: int | None = None
) -> dict[str, Any]:
    """The kind-22242 event that answers `challenge` from `relay_url`, signed by `secret`.

    Tags `["relay", <url>]` and `["challenge", <challenge>]`, empty content
    (NIP-42). The URL is the one we dialled; relays compare it with their own.
    """
    return sign_event(
        secret,
        AUTH_KIND,
        "",
        [["relay", relay_url], ["challenge", challenge]],
        int(time.time()) if created_at is None else created_at,
    )


def one_time_signer() -> AuthSigner:
    """A signer that answers every challenge with a fresh key (one per connection)."""

    def sign(relay_url: str, challenge: str) -> dict[str, Any]:
        return auth_event(BIP340.generate_secret(), relay_url, challenge)

    return sign


def key_signer(secret: bytes) -> AuthSigner:
    """A signer that answers every challenge with the key `secret`."""

    def sign(relay_url: str, challenge: str) -> dict[str, Any]:
        return auth_event(secret, relay_url, challenge)

    return sign
