"""PKCS#8 PEM helpers shared by the built-in key algorithms.

cryptography's serialization module is imported on first use: verifying
(`kez claim verify`) reads no key file and should not pay for it.
"""

from __future__ import annotations

from typing import Any

from ..errors import KeyFormatError, PassphraseError


def to_pem(key: Any, passphrase: bytes | None) -> bytes:
    from cryptography.hazmat.primitives import serialization

    encryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return pem


def load_pem(pem: bytes, passphrase: bytes | None) -> Any:
    """Load a PKCS#8 PEM private key; typed errors for wrong/missing passphrases and garbage."""
    from cryptography.hazmat.primitives import serialization

    encrypted = b"ENCRYPTED PRIVATE KEY" in pem
    if encrypted and not passphrase:
        raise PassphraseError(
            "the key file is encrypted and no passphrase was given",
            hint="set KEZ_PASSPHRASE or run in a terminal to be asked",
        )
    try:
        return serialization.load_pem_private_key(pem, password=passphrase if encrypted else None)
    except ValueError as exc:
        if encrypted:
            raise PassphraseError(
                "wrong passphrase for the key file (or the file is damaged)"
            ) from exc
        raise KeyFormatError(f"not a usable PKCS#8 PEM private key: {exc}") from exc
    except (TypeError, Exception) as exc:  # noqa: BLE001 - unsupported key types etc.
        raise KeyFormatError(f"not a usable PEM private key: {exc}") from exc


def parse_hex32(text: str, what: str) -> bytes:
    text = text.strip()
    if len(text) != 64:
        raise KeyFormatError(f"{what} must be 64 hex characters, got {len(text)}")
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise KeyFormatError(f"{what} is not hex") from exc
