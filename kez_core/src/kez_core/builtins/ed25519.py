"""Built-in key algorithm `ed25519`: Ed25519 (RFC 8032) over JCS bytes, via `cryptography`."""

from __future__ import annotations

from functools import lru_cache

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .. import hookimpl
from ..errors import KeyFormatError
from ._pem import load_pem, parse_hex32, to_pem


@lru_cache(maxsize=4096)
def _public_key(public: bytes) -> Ed25519PublicKey:
    # Parsing a public key costs about as much as hashing the message; identities
    # verify many objects with one key, so keep the parsed form.
    return Ed25519PublicKey.from_public_bytes(public)


def _private_key(secret: bytes) -> Ed25519PrivateKey:
    if len(secret) != 32:
        raise KeyFormatError("an Ed25519 secret key is 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(secret)


@attrs.frozen
class Ed25519:
    name: str = "ed25519"
    signature_alg: str = "ed25519-sha512-jcs"
    secret_formats: tuple[str, ...] = ("hex",)

    def generate_secret(self) -> bytes:
        return Ed25519PrivateKey.generate().private_bytes_raw()

    def public_from_secret(self, secret: bytes) -> bytes:
        return _private_key(secret).public_key().public_bytes_raw()

    def sign(self, secret: bytes, message: bytes) -> bytes:
        return _private_key(secret).sign(message)

    def verify(self, public: bytes, message: bytes, signature: bytes) -> bool:
        if len(public) != 32 or len(signature) != 64:
            return False
        try:
            _public_key(public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def parse_public(self, text: str) -> bytes:
        public = parse_hex32(text, "an ed25519 public key")
        try:
            _public_key(public)
        except ValueError as exc:
            raise KeyFormatError(f"not a valid Ed25519 public key: {exc}") from exc
        return public

    def format_public(self, public: bytes) -> str:
        return public.hex()

    def secret_to_pem(self, secret: bytes, passphrase: bytes | None) -> bytes:
        return to_pem(_private_key(secret), passphrase)

    def secret_from_pem(self, pem: bytes, passphrase: bytes | None) -> bytes | None:
        key = load_pem(pem, passphrase)
        return key.private_bytes_raw() if isinstance(key, Ed25519PrivateKey) else None

    def export_secret(self, secret: bytes, form: str) -> str:
        if form != "hex":
            raise KeyFormatError(f"ed25519 secrets export as hex (or PEM), not {form!r}")
        return secret.hex()

    def import_secret(self, text: str) -> bytes | None:
        text = text.strip()
        if len(text) == 64:
            secret = parse_hex32(text, "an ed25519 secret key")
            _private_key(secret)
            return secret
        return None


ED25519 = Ed25519()


@hookimpl
def kez_register_key_algorithms():
    return [ED25519]
