"""Built-in key algorithm `ed25519`: Ed25519 (RFC 8032) over JCS bytes.

Signing, key handling and the final word on verification are `cryptography`
(OpenSSL). Verification asks libsodium (through PyNaCl, already a
dependency) first, because it is about twice as fast here and sigchain
validation is bound by signature checks:

- libsodium accepts  → valid;
- libsodium refuses  → `cryptography` decides.

This gives exactly `cryptography`'s verdicts, because libsodium is the
stricter of the two: both check the same cofactorless equation
`[S]B = R + [k]A` by comparing the encoding of the computed R with the
signature's R bytes, and both refuse S ≥ L; libsodium additionally refuses a
non-canonical or small-order A and a small-order R. So every signature
libsodium accepts, OpenSSL accepts, and a signature OpenSSL accepts is never
refused (at worst it costs both checks). `tests/test_ed25519_verify_differential.py`
checks the combined verdict against `cryptography`'s on random and mutated
keys, messages and signatures, small-order and non-canonical points and the
RFC 8032 vectors. Without PyNaCl's low-level binding the verifier is
`cryptography` alone.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .. import hookimpl
from ..errors import KeyFormatError
from ._pem import load_pem, parse_hex32, to_pem

if TYPE_CHECKING:
    from ..protocols import KeyAlgorithm

try:
    import nacl.bindings  # noqa: F401 - importing it runs sodium_init()
    from nacl._sodium import ffi as _sodium_ffi
    from nacl._sodium import lib as _sodium_lib

    # crypto_sign_open(m, mlen_p, sm, smlen, pk) with m = mlen_p = NULL is libsodium's
    # crypto_sign_verify_detached on sm = sig || message (it copies nothing out);
    # PyNaCl binds no detached verify, and its wrappers allocate per call.
    _sodium_open: Callable[..., int] | None = _sodium_lib.crypto_sign_open
    _NULL: object = _sodium_ffi.NULL
except (ImportError, AttributeError):  # pragma: no cover - PyNaCl is a dependency
    _sodium_open = None
    _NULL = None


def sodium_accepts(public: bytes, message: bytes, signature: bytes) -> bool:
    """libsodium's verdict alone (False when it cannot be asked). Lengths are the caller's check."""
    if (
        _sodium_open is None
        or type(public) is not bytes
        or type(signature) is not bytes
        or type(message) is not bytes
    ):
        return False
    return _sodium_open(_NULL, _NULL, signature + message, 64 + len(message), public) == 0


def openssl_accepts(public: bytes, message: bytes, signature: bytes) -> bool:
    """`cryptography`'s (OpenSSL's) verdict: the reference the combined verifier keeps."""
    if len(public) != 32 or len(signature) != 64:
        return False
    try:
        _public_key(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


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

    def signing_function(self, secret: bytes) -> Callable[[bytes], bytes]:
        """`sign` with the secret parsed once (kez_core.keys.Signer keeps it)."""
        return _private_key(secret).sign

    def verify(self, public: bytes, message: bytes, signature: bytes) -> bool:
        if len(public) != 32 or len(signature) != 64:
            return False
        if (
            _sodium_open is not None
            and type(public) is bytes
            and type(signature) is bytes
            and type(message) is bytes
            and _sodium_open(_NULL, _NULL, signature + message, 64 + len(message), public) == 0
        ):
            return True  # libsodium's acceptance implies OpenSSL's (module docstring)
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
def kez_register_key_algorithms() -> list[KeyAlgorithm]:
    return [ED25519]
