"""A nostr-relay (PyPI) authenticator for tests: any key that passed NIP-42 may read and write.

nostr-relay's own `Authenticator` gives roles per public key from its
database, and an authenticated key it does not know gets the anonymous
role. The nostr transport authenticates with one-time keys, so the test
relay (`kez_channel_nostr.testing.running_relay(auth_required=True)`)
uses this subclass: the challenge checks are nostr-relay's own, and a
key that passed them gets `r` and `w`; anonymous clients get neither.

Imported only by the relay subprocess (it needs `nostr_relay`).
"""

from __future__ import annotations

from typing import Any

from nostr_relay.auth import Authenticator


class AuthenticatedMayWrite(Authenticator):
    async def authenticate(
        self, auth_event_json: dict[str, Any], challenge: str = ""
    ) -> dict[str, Any]:
        token = await super().authenticate(auth_event_json, challenge)
        token["roles"] = set(token.get("roles", ())) | {"r", "w"}
        return token
