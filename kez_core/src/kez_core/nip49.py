"""NIP-49 `ncryptsec`: a nostr secret key encrypted with a password.

scrypt (from `cryptography`) derives the key, XChaCha20-Poly1305 (libsodium,
through PyNaCl) seals the secret, bech32 (NIP-19) carries the result. The
work factor is capped on decryption so a hostile string cannot make us
allocate gigabytes.
"""

from __future__ import annotations

import os
import unicodedata

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from nacl import bindings as sodium
from nacl.exceptions import CryptoError

from . import nip19
from .errors import KeyFormatError, PassphraseError

VERSION = 0x02
DEFAULT_LOG_N = 16
MAX_LOG_N = 20  # 2^20 * 128 * 8 bytes = 1 GiB of scrypt memory; anything more is refused
KEY_SECURITY_UNKNOWN = 0x02
_LENGTH = 1 + 1 + 16 + 24 + 1 + 32 + 16


def _key(password: str, salt: bytes, log_n: int) -> bytes:
    normalized = unicodedata.normalize("NFKC", password).encode("utf-8")
    kdf = Scrypt(salt=salt, length=32, n=1 << log_n, r=8, p=1)
    return kdf.derive(normalized)


def encrypt(
    secret: bytes,
    password: str,
    *,
    log_n: int = DEFAULT_LOG_N,
    key_security: int = KEY_SECURITY_UNKNOWN,
) -> str:
    """The `ncryptsec1…` form of a 32-byte secret key."""
    if len(secret) != 32:
        raise KeyFormatError("ncryptsec holds a 32-byte secret key")
    if not 1 <= log_n <= MAX_LOG_N:
        raise KeyFormatError(f"scrypt log_n must be 1..{MAX_LOG_N}")
    salt, nonce = os.urandom(16), os.urandom(24)
    ad = bytes([key_security])
    sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        secret, ad, nonce, _key(password, salt, log_n)
    )
    return nip19.encode("ncryptsec", bytes([VERSION, log_n]) + salt + nonce + ad + sealed)


def decrypt(text: str, password: str) -> bytes:
    """The secret key inside an `ncryptsec1…` string. Wrong password → PassphraseError."""
    entity = nip19.decode(text)
    if entity.hrp != "ncryptsec":
        raise KeyFormatError(f"expected ncryptsec…, got {entity.hrp}…")
    raw: bytes = entity.data
    if len(raw) != _LENGTH:
        raise KeyFormatError(f"ncryptsec payload must be {_LENGTH} bytes, got {len(raw)}")
    if raw[0] != VERSION:
        raise KeyFormatError(f"ncryptsec version {raw[0]} is not supported (only {VERSION})")
    log_n = raw[1]
    if not 1 <= log_n <= MAX_LOG_N:
        raise KeyFormatError(
            f"ncryptsec asks for scrypt log_n={log_n}; more than {MAX_LOG_N} is refused"
        )
    salt, nonce, ad, sealed = raw[2:18], raw[18:42], raw[42:43], raw[43:]
    try:
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed, ad, nonce, _key(password, salt, log_n)
        )
    except CryptoError as exc:
        raise PassphraseError("wrong password for this ncryptsec (or it was altered)") from exc
