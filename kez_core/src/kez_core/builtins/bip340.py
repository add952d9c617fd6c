"""Built-in key algorithm `nostr`: BIP-340 Schnorr over SHA-256(JCS bytes), via `coincurve`.

Keys are secp256k1 x-only public keys, the same keys nostr uses, so a nostr
account's key can be a KEZ identity directly. `npub`/`nsec` (NIP-19) are
accepted and produced.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

import attrs
import coincurve
from coincurve._libsecp256k1 import lib as _lib
from coincurve.context import GLOBAL_CONTEXT
from cryptography.hazmat.primitives.asymmetric import ec

from .. import hookimpl, nip19
from ..errors import KeyFormatError
from ._pem import load_pem, parse_hex32, to_pem

if TYPE_CHECKING:
    from ..protocols import KeyAlgorithm

_sha256 = hashlib.sha256
_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@lru_cache(maxsize=4096)
def _xonly(public: bytes) -> coincurve.PublicKeyXOnly:
    return coincurve.PublicKeyXOnly(public)


# libsecp256k1's BIP-340 verify, called as `PublicKeyXOnly.verify` calls it
# (same context, same parsed key struct, same arguments) without the
# wrapper's Python frames: `_schnorrsig_verify(ctx, sig64, msg, len(msg), key)`
# is 1 for a valid signature and 0 otherwise. A differential test holds it
# to coincurve's verdicts.
_schnorrsig_verify: Callable[..., int] = _lib.secp256k1_schnorrsig_verify
_CTX = GLOBAL_CONTEXT.ctx


@lru_cache(maxsize=4096)
def _xonly_struct(public: bytes) -> object:
    """The parsed `secp256k1_xonly_pubkey *` of a key (raises ValueError off the curve)."""
    return _xonly(public).public_key  # built in GLOBAL_CONTEXT, coincurve's default


def _private_key(secret: bytes) -> coincurve.PrivateKey:
    if len(secret) != 32 or not 0 < int.from_bytes(secret, "big") < _ORDER:
        raise KeyFormatError("a secp256k1 secret key is 32 bytes in 1..n-1")
    return coincurve.PrivateKey(secret)


def schnorr_sign(secret: bytes, digest: bytes, aux_rand: bytes | None = None) -> bytes:
    """Raw BIP-340 signature over a 32-byte message (fresh aux randomness by default)."""
    return _private_key(secret).sign_schnorr(
        digest, aux_rand if aux_rand is not None else os.urandom(32)
    )


def schnorr_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Raw BIP-340 verification over a message of any length; False for any bad input."""
    if len(public) != 32 or len(signature) != 64:
        return False
    try:
        return (
            _schnorrsig_verify(_CTX, signature, message, len(message), _xonly_struct(public)) != 0
        )
    except (ValueError, TypeError):
        return False


@attrs.frozen
class Bip340:
    name: str = "nostr"
    signature_alg: str = "bip340-sha256-jcs"
    secret_formats: tuple[str, ...] = ("hex", "nsec")

    def generate_secret(self) -> bytes:
        return coincurve.PrivateKey().secret

    def public_from_secret(self, secret: bytes) -> bytes:
        return _private_key(secret).public_key_xonly.format()

    def sign(self, secret: bytes, message: bytes) -> bytes:
        return schnorr_sign(secret, hashlib.sha256(message).digest())

    def verify(self, public: bytes, message: bytes, signature: bytes) -> bool:
        # schnorr_verify over SHA-256(message), inlined: this is every nostr check's path
        if len(public) != 32 or len(signature) != 64:
            return False
        try:
            return (
                _schnorrsig_verify(
                    _CTX, signature, _sha256(message).digest(), 32, _xonly_struct(public)
                )
                != 0
            )
        except (ValueError, TypeError):
            return False

    def parse_public(self, text: str) -> bytes:
        text = text.strip()
        if text.startswith("npub1"):
            public = nip19.decode_expect(text, "npub")
        else:
            public = parse_hex32(text, "a nostr public key")
        try:
            _xonly(public)
        except (ValueError, TypeError) as exc:
            raise KeyFormatError(
                "not a valid secp256k1 x-only public key (not on the curve)"
            ) from exc
        return public

    def format_public(self, public: bytes) -> str:
        return public.hex()

    def secret_to_pem(self, secret: bytes, passphrase: bytes | None) -> bytes:
        key = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256K1())
        return to_pem(key, passphrase)

    def secret_from_pem(self, pem: bytes, passphrase: bytes | None) -> bytes | None:
        key = load_pem(pem, passphrase)
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256K1):
            return key.private_numbers().private_value.to_bytes(32, "big")
        return None

    def export_secret(self, secret: bytes, form: str) -> str:
        if form == "hex":
            return secret.hex()
        if form == "nsec":
            return nip19.encode("nsec", secret)
        raise KeyFormatError(f"nostr secrets export as hex, nsec, ncryptsec or PEM, not {form!r}")

    def import_secret(self, text: str) -> bytes | None:
        text = text.strip()
        if text.startswith("nsec1"):
            secret = nip19.decode_expect(text, "nsec")
        elif len(text) == 64:
            secret = parse_hex32(text, "a nostr secret key")
        else:
            return None
        _private_key(secret)
        return secret


BIP340 = Bip340()


@hookimpl
def kez_register_key_algorithms() -> list[KeyAlgorithm]:
    return [BIP340]
