"""NIP-44 version 2: encrypted payloads between two nostr (secp256k1) keys.

The construction, as the NIP specifies it:

- conversation key = HKDF-extract(salt=b"nip44-v2", IKM=x coordinate of the
  secp256k1 ECDH point of our secret and their x-only public key); it is the
  same in both directions.
- per message, a 32-byte random nonce; HKDF-expand(conversation key,
  info=nonce, L=76) gives a ChaCha20 key (32), a ChaCha20 nonce (12) and an
  HMAC-SHA256 key (32).
- the UTF-8 plaintext (1..65535 bytes) is prefixed with its length (u16 big
  endian) and zero-padded to `calc_padded_len`, then encrypted with ChaCha20
  (RFC 8439, counter 0); the MAC is HMAC-SHA256(hmac key, nonce || ciphertext).
- payload = base64(0x02 || nonce || ciphertext || mac).

All primitives come from `cryptography` (ECDH on SECP256K1, HMAC, HKDF-expand,
ChaCha20). Every invalid key, plaintext or payload raises `Nip44Error` (a
`DecodeError`), never a library exception.

The ECDH is `cryptography`'s (OpenSSL, constant time) rather than coincurve's:
coincurve's `PrivateKey.ecdh` always hashes the point (sha256 of the
compressed form, not the bare x NIP-44 needs) and takes no hash function, and
`PublicKey.multiply` is libsecp256k1's tweak multiplication, which is not
constant time in the scalar (it is meant for public tweaks, not secret keys).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from typing import NamedTuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from .errors import Nip44Error

VERSION = 2
SALT = b"nip44-v2"
MIN_PLAINTEXT_SIZE = 1
MAX_PLAINTEXT_SIZE = 65535  # bytes of UTF-8
# Bounds of the base64 text and of the decoded bytes, straight from the NIP.
_MIN_PAYLOAD_CHARS, _MAX_PAYLOAD_CHARS = 132, 87472
_MIN_DATA_BYTES, _MAX_DATA_BYTES = 99, 65603
_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class MessageKeys(NamedTuple):
    """The three per-message keys HKDF-expand derives from a conversation key and a nonce."""

    chacha_key: bytes  # 32 bytes
    chacha_nonce: bytes  # 12 bytes
    hmac_key: bytes  # 32 bytes


def get_conversation_key(secret: bytes, public_xonly: bytes) -> bytes:
    """The 32-byte conversation key shared by `secret`'s owner and `public_xonly`'s owner.

    `secret` is a 32-byte secp256k1 secret key (1..n-1); `public_xonly` a
    32-byte BIP-340 x-only public key (its even-y point is used). The result
    is symmetric: get_conversation_key(a, B) == get_conversation_key(b, A).
    Raises `Nip44Error` for a secret out of range or a public key not on the curve.
    """
    if not isinstance(secret, bytes | bytearray) or len(secret) != 32:
        raise Nip44Error("NIP-44: a secret key is 32 bytes")
    if not isinstance(public_xonly, bytes | bytearray) or len(public_xonly) != 32:
        raise Nip44Error("NIP-44: a public key is 32 bytes (x-only)")
    scalar = int.from_bytes(secret, "big")
    if not 0 < scalar < _ORDER:
        raise Nip44Error("NIP-44: the secret key is not in 1..n-1")
    try:
        private = ec.derive_private_key(scalar, ec.SECP256K1())
        public = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256K1(), b"\x02" + bytes(public_xonly)
        )
        shared_x = private.exchange(ec.ECDH(), public)  # SEC1 ECDH: the bare x coordinate
    except ValueError as exc:
        raise Nip44Error("NIP-44: the public key is not a point on secp256k1") from exc
    return hmac.digest(SALT, shared_x, "sha256")  # HKDF-extract(salt, IKM) is HMAC(salt, IKM)


def get_message_keys(conversation_key: bytes, nonce: bytes) -> MessageKeys:
    """Derive the ChaCha20 key/nonce and HMAC key for one message (HKDF-expand, L=76)."""
    if not isinstance(conversation_key, bytes | bytearray) or len(conversation_key) != 32:
        raise Nip44Error("NIP-44: the conversation key is 32 bytes")
    if not isinstance(nonce, bytes | bytearray) or len(nonce) != 32:
        raise Nip44Error("NIP-44: the nonce is 32 bytes")
    keys = HKDFExpand(algorithm=hashes.SHA256(), length=76, info=bytes(nonce)).derive(
        bytes(conversation_key)
    )
    return MessageKeys(keys[0:32], keys[32:44], keys[44:76])


def calc_padded_len(unpadded_len: int) -> int:
    """Length the plaintext is padded to (before the 2-byte length prefix); minimum 32."""
    if unpadded_len <= 32:
        return 32
    next_power = 1 << (unpadded_len - 1).bit_length()  # == 1 << (floor(log2(len - 1)) + 1)
    chunk = 32 if next_power <= 256 else next_power // 8
    return chunk * ((unpadded_len - 1) // chunk + 1)


def _pad(plaintext: str) -> bytes:
    if not isinstance(plaintext, str):
        raise Nip44Error("NIP-44: the plaintext must be text")
    try:
        unpadded = plaintext.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Nip44Error("NIP-44: the plaintext is not valid Unicode (lone surrogate)") from exc
    n = len(unpadded)
    if not MIN_PLAINTEXT_SIZE <= n <= MAX_PLAINTEXT_SIZE:
        raise Nip44Error(
            f"NIP-44: plaintext must be {MIN_PLAINTEXT_SIZE}..{MAX_PLAINTEXT_SIZE} bytes of UTF-8, got {n}"
        )
    return n.to_bytes(2, "big") + unpadded + bytes(calc_padded_len(n) - n)


def _unpad(padded: bytes) -> str:
    n = int.from_bytes(padded[0:2], "big")
    unpadded = padded[2 : 2 + n]
    if n == 0 or len(unpadded) != n or len(padded) != 2 + calc_padded_len(n):
        raise Nip44Error("NIP-44: invalid padding")
    try:
        return unpadded.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Nip44Error("NIP-44: the plaintext is not UTF-8") from exc


def _chacha20(key: bytes, nonce12: bytes, data: bytes) -> bytes:
    # cryptography's ChaCha20 takes 16 bytes: a 4-byte little-endian block counter, then the
    # 12-byte RFC 8439 nonce. NIP-44 starts the counter at 0.
    cipher = Cipher(algorithms.ChaCha20(key, b"\x00\x00\x00\x00" + nonce12), mode=None)
    return cipher.encryptor().update(data)


def _hmac_aad(key: bytes, message: bytes, aad: bytes) -> bytes:
    if len(aad) != 32:
        raise Nip44Error("NIP-44: the associated data (nonce) is 32 bytes")
    return hmac.digest(key, aad + message, "sha256")


def encrypt(plaintext: str, conversation_key: bytes, nonce: bytes | None = None) -> str:
    """Encrypt `plaintext` into a base64 NIP-44 v2 payload.

    `nonce` (32 bytes) is for test vectors only; leave it out so a fresh
    random one is used: reusing a nonce under one conversation key breaks
    the encryption.
    """
    if nonce is None:
        nonce = os.urandom(32)
    keys = get_message_keys(conversation_key, nonce)
    ciphertext = _chacha20(keys.chacha_key, keys.chacha_nonce, _pad(plaintext))
    mac = _hmac_aad(keys.hmac_key, ciphertext, bytes(nonce))
    return base64.b64encode(bytes([VERSION]) + bytes(nonce) + ciphertext + mac).decode("ascii")


def _decode_payload(payload: str) -> tuple[bytes, bytes, bytes]:
    if not isinstance(payload, str):
        raise Nip44Error("NIP-44: the payload must be text (base64)")
    if payload == "" or payload[0] == "#":
        raise Nip44Error("NIP-44: unknown encryption version")
    if not _MIN_PAYLOAD_CHARS <= len(payload) <= _MAX_PAYLOAD_CHARS:
        raise Nip44Error(f"NIP-44: invalid payload length {len(payload)}")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII text
        raise Nip44Error("NIP-44: the payload is not valid base64") from exc
    if not _MIN_DATA_BYTES <= len(data) <= _MAX_DATA_BYTES:
        raise Nip44Error(f"NIP-44: invalid decoded payload length {len(data)}")
    if data[0] != VERSION:
        raise Nip44Error(f"NIP-44: unknown encryption version {data[0]}")
    return data[1:33], data[33:-32], data[-32:]


def decrypt(payload: str, conversation_key: bytes) -> str:
    """Decrypt a base64 NIP-44 v2 payload; raises `Nip44Error` if anything is wrong.

    The MAC is checked (in constant time) before anything is decrypted.
    """
    nonce, ciphertext, mac = _decode_payload(payload)
    keys = get_message_keys(conversation_key, nonce)
    expected = _hmac_aad(keys.hmac_key, ciphertext, nonce)
    if not hmac.compare_digest(expected, mac):
        raise Nip44Error("NIP-44: invalid MAC (wrong key, or the payload was altered)")
    return _unpad(_chacha20(keys.chacha_key, keys.chacha_nonce, ciphertext))
