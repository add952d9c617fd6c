"""How a KEZ key proves itself to a NATS server whose auth callout is kez-server (spec §12.5).

Both sides use this module: the transport to build what a client sends in
its CONNECT, kez-server's callout to read and check it. One place for the
wire format, so the two cannot drift.

- An Ed25519 key (primary or device) is the NATS user nkey itself: `nkey`
  is `U…` (the raw public key, NATS nkey encoding) and `sig` is its
  Ed25519 signature over the server's nonce, as NATS defines.
- Any other key (BIP-340 `nostr:`) cannot be an nkey. The client presents a
  throwaway nkey (so the server sends the nonce on to the callout) and puts
  a token in `auth_token`: its key signs
  `"kez-nats-auth/1\\n" + nonce + "\\n" + nkey + "\\n" + identity + "\\n" + key`
  with the key's own algorithm (BIP-340 signs the SHA-256 of those bytes).
- `auth_token` is always the JSON token of `make_token` (`identity` names
  the chain to check the key against; without it the key is taken as the
  identity or the registered primary).

nkeys (the NATS project's Python library) does the nkey encoding; the key
algorithms of the KEZ registry sign and verify.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable
from typing import Any

import attrs
from kez_core.keys import Signer

TOKEN_KIND = "kez.nats_auth"
TOKEN_VERSION = 1
MAX_TOKEN = 2048  # bytes of auth_token the callout reads at most
CONTEXT = b"kez-nats-auth/1"

__all__ = [
    "AuthToken",
    "ClientAuth",
    "decode_sig",
    "make_token",
    "parse_nkey",
    "parse_token",
    "parse_user_nkey",
    "signed_bytes",
    "user_nkey",
]


def user_nkey(public: bytes) -> str:
    """The NATS user nkey (`U…`, 56 characters) of a raw 32-byte Ed25519 public key."""
    import nkeys

    if len(public) != 32:
        raise ValueError("an nkey holds a 32-byte Ed25519 public key")
    raw = bytes([nkeys.PREFIX_BYTE_USER]) + public
    return base64.b32encode(raw + nkeys.crc16_checksum(raw)).decode("ascii")


def parse_user_nkey(text: object) -> bytes | None:
    """The raw public key of a user nkey `U…`; None for anything else (bad prefix, CRC, length)."""
    import nkeys

    return parse_nkey(text, nkeys.PREFIX_BYTE_USER)


def parse_nkey(text: object, prefix: int) -> bytes | None:
    """The raw public key of a public nkey with role `prefix` (nkeys.PREFIX_BYTE_*); None otherwise."""
    import nkeys

    if not isinstance(text, str) or len(text) != 56:
        return None
    try:
        raw = base64.b32decode(text)
    except (binascii.Error, ValueError):
        return None
    body, crc = raw[:-2], raw[-2:]
    if body[0] != prefix or nkeys.crc16_checksum(body) != crc:
        return None
    return bytes(body[1:])


def decode_sig(text: object) -> bytes | None:
    """A 64-byte signature from NATS' `sig`: padded standard base64 (nats-py) or raw
    URL-safe base64 (Go clients). None when it is neither."""
    if not isinstance(text, str) or len(text) > 200:
        return None
    body = text.rstrip("=")
    padded = body + "=" * (-len(body) % 4)
    alphabet = "-_" if ("-" in body or "_" in body) else "+/"
    try:
        raw = base64.b64decode(padded, altchars=alphabet.encode(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 64 else None


def signed_bytes(nonce: str, nkey: str, identity: str, key: str) -> bytes:
    """What a token's key signs: context, server nonce, presented nkey, identity and key."""
    return b"\n".join(part.encode() for part in (CONTEXT.decode(), nonce, nkey, identity, key))


@attrs.frozen
class AuthToken:
    """The parsed `auth_token`: which identity to check, and for non-nkey keys the key and signature."""

    identity: str | None
    key: str | None = None
    sig: str | None = None


def make_token(
    *, identity: str, signer: Signer | None = None, nonce: str = "", nkey: str = ""
) -> str:
    """The `auth_token` text: identity only (Ed25519: the nkey proves the key), or signed by `signer`."""
    token: dict[str, Any] = {"kez": TOKEN_KIND, "v": TOKEN_VERSION, "identity": identity}
    if signer is not None:
        key = signer.key_id
        token["key"] = key
        token["sig"] = signer.sign(signed_bytes(nonce, nkey, identity, key)).hex()
    return json.dumps(token, separators=(",", ":"), sort_keys=True)


def parse_token(text: object) -> AuthToken | None:
    """The token in `auth_token`, or None when there is none or it is not ours (never raises)."""
    if not isinstance(text, str) or not text or len(text) > MAX_TOKEN:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if (
        not isinstance(data, dict)
        or data.get("kez") != TOKEN_KIND
        or data.get("v") != TOKEN_VERSION
    ):
        return None
    fields = {name: data.get(name) for name in ("identity", "key", "sig")}
    if any(value is not None and not isinstance(value, str) for value in fields.values()):
        return None
    return AuthToken(**fields)


@attrs.define(eq=False)
class ClientAuth:
    """What a KEZ client hands nats-py to authenticate with `signer` as a key of `identity`.

    `connect_options()` gives `signature_cb` and `token` for `Client.connect`;
    `nkey` must be set as the client's user nkey (`apply`), which nats-py
    otherwise takes only from a seed file or string. The nonce arrives in
    `signature_cb`, which nats-py calls before it reads the token.
    """

    signer: Signer
    identity: str
    nkey: str = attrs.field(init=False)
    _throwaway: Any = attrs.field(init=False, default=None, repr=False)
    _nonce: str = attrs.field(init=False, default="")

    def __attrs_post_init__(self) -> None:
        if self.signer.alg.name == "ed25519":
            self.nkey = user_nkey(self.signer.alg.public_from_secret(self.signer.secret))
        else:
            import nkeys

            seed = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)
            self._throwaway = nkeys.from_seed(bytearray(seed))
            self.nkey = self._throwaway.public_key.decode()

    def sign_nonce(self, nonce: str) -> bytes:
        """nats-py's `signature_cb`: the nonce signed by the user nkey, padded standard base64."""
        self._nonce = nonce
        data = nonce.encode()
        raw = self.signer.sign(data) if self._throwaway is None else self._throwaway.sign(data)
        return base64.b64encode(raw)

    def token(self) -> str:
        """nats-py's (callable) `token`: `make_token` over the nonce just signed."""
        if self._throwaway is None:
            return make_token(identity=self.identity)
        return make_token(
            identity=self.identity, signer=self.signer, nonce=self._nonce, nkey=self.nkey
        )

    def connect_options(self) -> dict[str, Callable[..., Any]]:
        return {"signature_cb": self.sign_nonce, "token": self.token}

    def apply(self, client: Any) -> None:
        """Give a nats-py `Client` our user nkey (it sends `nkey` beside `sig` in CONNECT)."""
        client._public_nkey = self.nkey  # noqa: SLF001 - nats-py has no public setter
