"""The server's VAPID key (RFC 8292): one P-256 key, generated on first run, kept in a PEM file.

Browsers bind a push subscription to the public key the web app handed to
`PushManager.subscribe` (`applicationServerKey`, from
`GET /v1/push/vapid-public-key`); push services then accept only pushes
whose VAPID token that key signed. So the key must outlive restarts, and
server processes sharing one database must share one key file.

The file is PKCS#8 PEM, unencrypted (the server signs without a person
present), mode 0600. It is created atomically: written to a temporary
file in the same folder, then hard-linked to its name, which fails if
another process created it first; that one's key is then read. A crash
never leaves a half-written key under the name.
"""

from __future__ import annotations

import base64
import contextlib
import os
import tempfile
from pathlib import Path

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kez_core.errors import ExitCode, KezError

from .config import ServerSettings
from .db import database_url

DEFAULT_NAME = "kez-vapid.pem"


class VapidKeyError(KezError):
    """The VAPID key file cannot be read, parsed or written."""

    exit_code = ExitCode.STORE
    code = "vapid_key"


@attrs.frozen
class VapidKey:
    path: Path
    private: ec.EllipticCurvePrivateKey

    @property
    def public_raw(self) -> bytes:
        """The uncompressed point (65 bytes, 0x04 first): the `applicationServerKey`."""
        return self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    @property
    def public_b64url(self) -> str:
        return base64.urlsafe_b64encode(self.public_raw).rstrip(b"=").decode("ascii")

    def pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def default_path(settings: ServerSettings) -> Path:
    """`--vapid-key`, else beside the SQLite file (`kez.db` → `kez.db.vapid.pem`), else ./kez-vapid.pem."""
    if settings.vapid_key:
        return Path(settings.vapid_key).expanduser()
    url = database_url(settings.db)
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///") :])
        return db.with_name(db.name + ".vapid.pem")
    return Path(DEFAULT_NAME).resolve()


def load_or_create(path: Path) -> VapidKey:
    """The key in `path`, generated and stored (0600, atomically) when the file does not exist."""
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return _create(path)
    except OSError as exc:
        raise VapidKeyError(f"cannot read the VAPID key {path}: {exc.strerror or exc}") from exc
    return VapidKey(path, _parse(pem, path))


def _parse(pem: bytes, path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise VapidKeyError(
            f"{path} is not an unencrypted PEM private key",
            hint="point --vapid-key at the server's VAPID key, or move the file away to make a new "
            "one (browsers then must subscribe again)",
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise VapidKeyError(
            f"{path} holds a key that is not P-256; VAPID keys are ECDSA P-256",
            hint="move the file away to make a new one (browsers then must subscribe again)",
        )
    return key


def _create(path: Path) -> VapidKey:
    key = VapidKey(path, ec.generate_private_key(ec.SECP256R1()))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".vapid-", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(key.pem())
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)  # fails when another process was first
            except FileExistsError:
                return VapidKey(path, _parse(path.read_bytes(), path))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    except OSError as exc:
        raise VapidKeyError(
            f"cannot create the VAPID key {path}: {exc.strerror or exc}",
            hint="give a writable path with --vapid-key",
        ) from exc
    return key
