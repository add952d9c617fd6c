"""kez-server as nats-server's auth callout: who may connect, and which inboxes they may read.

nats-server (config from `nats_config`) sends every connecting client's
CONNECT options to `$SYS.REQ.USER.AUTH` as an authorization request JWT
signed by the server. The callout answers with an authorization response
JWT signed by the issuer: an error, or a user JWT with permissions.

A client is let in when it proves it holds a key of an identity registered
here (spec §12.5, `kez_transport_nats.auth` is the wire format):

1. `sig` is a signature over the server's nonce by the user nkey `nkey`
   (nats-server 2.15 forwards both unchecked, so the check is ours; padded
   standard base64 from nats-py and raw URL-safe base64 from Go clients);
2. the key is that nkey (Ed25519), or the `key` of the `auth_token`, which
   signed the nonce and the nkey (BIP-340);
3. the identity (the token's `identity`, else the identity whose registered
   primary is the key, else the key itself) has a handle here;
4. the key is that identity's current primary or an active device in the
   chain stored here (without a stored chain: the registered primary).

Everything is decided per connection: a key removed from the chain is
refused on its next connect. The user JWT allows subscribing to
`kez.inbox.<routing id>` of the identity's inbox keys that a message may
still arrive for (`InboxKeyRecord.usable`: until 7 days after expiry) and
to the client's own `_INBOX.>`, publishing to `kez.inbox.*`, and replies.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import attrs
from kez_core.errors import KezError
from kez_core.keys import parse_key_id
from kez_core.registry import Registry, default_registry
from kez_core.timefmt import now
from kez_transport_nats import auth
from kez_transport_nats.config import SUBJECT_PREFIX

from . import nats_jwt
from .chains import is_identity_id
from .db import Store
from .inbox_keys import InboxHistories
from .nats_config import AUTH_SUBJECT, NatsKeys
from .privacy import redact_ids, shown

log = logging.getLogger("kez_server.nats")

GLOBAL_ACCOUNT = "$G"  # the account of a config-file (non-operator) nats-server
CHAIN_CACHE = 1024


class Refused(Exception):
    """Why a connection is refused (the text goes back to nats-server, and to our log)."""


@attrs.frozen
class Grant:
    """A client let in: who it is and what it may read."""

    identity: str
    key: str
    routing_ids: tuple[str, ...]

    @property
    def subscribe(self) -> list[str]:
        return [SUBJECT_PREFIX + r for r in self.routing_ids] + ["_INBOX.>"]

    @property
    def publish(self) -> list[str]:
        return [SUBJECT_PREFIX + "*"]


class Authorizer:
    """Decides authorization requests from the store (thread-safe; called in a worker thread)."""

    def __init__(self, store: Store, keys: NatsKeys, registry: Registry | None = None) -> None:
        self.store = store
        self.keys = keys
        self.registry = registry or default_registry()
        self._issuer = keys.issuer()
        self._histories = InboxHistories(store, self.registry, CHAIN_CACHE)

    # ------------------------------------------------------------ answer

    def answer(self, request: bytes, at: datetime | None = None) -> bytes:
        """The signed authorization response to one request JWT (never raises for bad input)."""
        try:
            claims = nats_jwt.decode(request, self._verify_server)
            nats = claims.get("nats") or {}
            user = nats["user_nkey"]
            server = nats["server_id"]["id"]
            if not isinstance(user, str) or not isinstance(server, str):
                raise KeyError("user_nkey")
        except (nats_jwt.JwtError, KeyError, TypeError) as exc:
            log.warning("NATS callout: unreadable authorization request: %s", exc)
            return b""  # nothing to address an answer to; nats-server times out and refuses
        body: dict[str, Any] = {"type": "authorization_response", "version": 2}
        try:
            grant = self.decide(nats, at)
        except Refused as exc:
            body["error"] = str(exc)
            log.info("NATS callout: refused %s: %s", _client(nats), redact_ids(str(exc), log))
        else:
            body["jwt"] = self.user_jwt(user, grant)
            log.info(
                "NATS callout: %s is %s (key %s), %d inbox(es)",
                _client(nats),
                shown(grant.identity, log),
                shown(grant.key, log),
                len(grant.routing_ids),
            )
        response = {"sub": user, "aud": server, "nats": body}
        return nats_jwt.encode(response, self._issuer).encode()

    def user_jwt(self, user_nkey: str, grant: Grant) -> str:
        claims = {
            "sub": user_nkey,
            "aud": GLOBAL_ACCOUNT,
            "name": grant.identity,
            "nats": {
                "pub": {"allow": grant.publish},
                "sub": {"allow": grant.subscribe},
                "resp": {"max": 1, "ttl": 0},
                "subs": -1,
                "data": -1,
                "payload": -1,
                "type": "user",
                "version": 2,
            },
        }
        return nats_jwt.encode(claims, self._issuer)

    def _verify_server(self, issuer: str, data: bytes, sig: bytes) -> bool:
        import nkeys

        public = auth.parse_nkey(issuer, nkeys.PREFIX_BYTE_SERVER)
        return public is not None and self._ed25519().verify(public, data, sig)

    def _ed25519(self) -> Any:
        return self.registry.key_algorithm("ed25519")

    # ------------------------------------------------------------ decide

    def decide(self, nats: dict[str, Any], at: datetime | None = None) -> Grant:
        """The grant for one request's `nats` claims; Refused says why not."""
        opts = nats.get("connect_opts") or {}
        info = nats.get("client_info") or {}
        nkey, sig, nonce = opts.get("nkey"), opts.get("sig"), info.get("nonce")
        if not nkey or not sig:
            raise Refused("no credentials: a KEZ key must sign the server's nonce (spec §12.5)")
        if not isinstance(nonce, str) or not nonce:
            raise Refused("the server sent no nonce; the callout cannot check the signature")
        public = auth.parse_user_nkey(nkey)
        if public is None:
            raise Refused("nkey is not a user nkey (U…)")
        signature = auth.decode_sig(sig)
        if signature is None or not self._ed25519().verify(public, nonce.encode(), signature):
            raise Refused("the nonce signature does not verify")
        token = auth.parse_token(opts.get("auth_token"))
        if token is not None and token.key is not None:
            key = self._token_key(token, nonce, nkey)
        else:
            key = f"ed25519:{public.hex()}"
        identity = self._identity(token, key)
        return self._grant(identity, key, at or now())

    def _token_key(self, token: auth.AuthToken, nonce: str, nkey: str) -> str:
        try:
            parsed = parse_key_id(token.key, self.registry)
        except KezError:
            raise Refused("the token's key is not a key id") from None
        key = str(parsed)
        try:
            sig = bytes.fromhex(token.sig or "")
        except ValueError:
            sig = b""
        alg = self.registry.key_algorithm(parsed.alg)
        data = auth.signed_bytes(nonce, nkey, token.identity or "", token.key or "")
        if not sig or not alg.verify(parsed.public, data, sig):
            raise Refused("the token's signature does not verify")
        return key

    def _identity(self, token: auth.AuthToken | None, key: str) -> str:
        if token is not None and token.identity is not None:
            if not is_identity_id(token.identity, self.registry):
                raise Refused("the token's identity is not an identity id in normal form")
            return token.identity
        handle = self.store.handle_of(key)
        row = self.store.lookup(handle) if handle else None
        return row["identity"] if row else key

    def _grant(self, identity: str, key: str, at: datetime) -> Grant:
        handle = self.store.handle_of_identity(identity)
        if handle is None:
            raise Refused(f"{identity} has no handle on this server")
        chain = self._histories.get(identity)
        if chain is None:
            row = self.store.lookup(handle)
            if row is None or row["primary_key"] != key:
                raise Refused(f"{key} is not the registered primary of {identity}")
            return Grant(identity, key, ())
        if chain.state.role_of(key) not in ("primary", "device"):
            raise Refused(f"{key} is not the primary or an active device of {identity}")
        return Grant(identity, key, chain.routing_ids(at))


def _client(nats: dict[str, Any]) -> str:
    """The connection as the log may name it: nats-server's client number, the address hidden."""
    info = nats.get("client_info") or {}
    return f"client {info.get('id', '?')} from {shown(str(info.get('host', '?')), log)}"


async def run_callout(
    url: str,
    authorizer: Authorizer,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve `$SYS.REQ.USER.AUTH` on the NATS server at `url` as the service user until `stop`.

    Reconnects when the server goes away (nats-py's reconnect loop, forever):
    a chat home keeps working across a nats-server restart.
    """
    from nats.aio.client import Client

    client = Client()

    async def on_error(exc: Exception) -> None:
        log.warning("NATS callout connection: %s", exc)

    await client.connect(
        servers=[url],
        name="kez-server callout",
        nkeys_seed_str=authorizer.keys.service_seed.decode(),
        error_cb=on_error,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
    )

    async def handle(msg: Any) -> None:
        if not msg.reply:
            return
        try:
            answer = await asyncio.to_thread(authorizer.answer, msg.data)
        except Exception as exc:  # noqa: BLE001 - a database failure must not end the service
            log.error("NATS callout: cannot decide a request: %r", exc)
            return
        if answer:
            await msg.respond(answer)

    try:
        await client.subscribe(AUTH_SUBJECT, cb=handle)
        await client.flush()
        log.info("NATS callout: serving %s on %s", AUTH_SUBJECT, url)
        if ready is not None:
            ready.set()
        await (stop or asyncio.Event()).wait()
    finally:
        try:
            await asyncio.wait_for(client.close(), 5)
        except Exception as exc:  # noqa: BLE001 - closing is best effort
            log.debug("closing the callout connection: %r", exc)
