"""NATS JWTs (the `ed25519-nkey` kind): read the server's authorization request, write our answers.

A NATS JWT is `base64url(header).base64url(claims).base64url(signature)`,
header `{"typ":"JWT","alg":"ed25519-nkey"}`, signed with an nkey (Ed25519)
over the first two parts; `jti` is the base32 of SHA-512/256 of the claims
with an empty `jti`, as nats-io/jwt (Go, v2) computes it. No maintained
Python library writes these (PyPI's `nats-jwt` calls itself untested and
unofficial), and a JWT is an encoding, not cryptography: the shapes are
nats-io/jwt v2's, the signing is nkeys' (PyNaCl). See docs/spec.md §12.5.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from typing import Any

HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
MAX_JWT = 64 * 1024  # an authorization request with client certificates stays far below


class JwtError(ValueError):
    """A token that is not a NATS JWT signed by the key it names."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JwtError(f"not base64url: {exc}") from None


def _jti(claims: dict[str, Any]) -> str:
    # Go's json.Marshal of ClaimsData: the fields in struct order, empty ones left out.
    order = ("aud", "exp", "jti", "iat", "iss", "name", "nbf", "sub")
    data = {k: claims[k] for k in order if claims.get(k) not in (None, "", 0)}
    digest = hashlib.new("sha512_256", json.dumps(data, separators=(",", ":")).encode()).digest()
    return base64.b32encode(digest).decode("ascii").rstrip("=")


def encode(claims: dict[str, Any], signer: Any) -> str:
    """Sign `claims` with an nkeys KeyPair (`iss` and `iat` set here, `jti` computed)."""
    claims = dict(claims)
    claims["iss"] = signer.public_key.decode()
    claims["iat"] = int(time.time())
    claims.pop("jti", None)
    claims["jti"] = _jti(claims)
    head = _b64(json.dumps(HEADER, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = signer.sign(f"{head}.{body}".encode())
    return f"{head}.{body}.{_b64(signature)}"


def decode(token: bytes | str, verify: Any) -> dict[str, Any]:
    """The claims of `token` after checking its signature with `verify(issuer, data, sig) -> bool`.

    JwtError for anything malformed or badly signed.
    """
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise JwtError("not ASCII") from None
    if len(token) > MAX_JWT:
        raise JwtError(f"longer than {MAX_JWT} characters")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise JwtError("not three dot-separated parts")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
    except ValueError as exc:
        raise JwtError(f"not JSON: {exc}") from None
    if not isinstance(header, dict) or header.get("alg") != HEADER["alg"]:
        raise JwtError("the header's alg is not ed25519-nkey")
    if not isinstance(claims, dict) or not isinstance(claims.get("iss"), str):
        raise JwtError("the claims have no issuer")
    if not verify(claims["iss"], f"{parts[0]}.{parts[1]}".encode(), _unb64(parts[2])):
        raise JwtError("the signature does not verify")
    return claims
