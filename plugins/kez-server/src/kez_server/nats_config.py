"""The server's NATS keys (kept beside its database) and the nats-server config that trusts them.

Two nkey seeds, made on first use and never changed afterwards:

- the **issuer** (an account nkey, `SA…`): signs the callout's answers and
  the user JWTs in them; nats-server's `auth_callout.issuer` is its public key;
- the **service** user (a user nkey, `SU…`): how the callout service itself
  connects. It must be an nkey user: nats-server sends a nonce (which the
  callout needs to check a client's signature) only when an nkey user is
  configured.

For a SQLite database `DIR/NAME` the seeds are `DIR/NAME.nats-issuer.nk`
and `DIR/NAME.nats-service.nk`, mode 0600. A PostgreSQL database has no
folder: `keys_dir` names one.

The written config is complete: the listen address, the service user,
`auth_callout` with the issuer and that user, and no other static users,
so every other client goes through the callout.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path

import attrs
from kez_core.errors import ExitCode, KezError

from .config import ConfigError, parse_bind

ISSUER_SUFFIX = ".nats-issuer.nk"
SERVICE_SUFFIX = ".nats-service.nk"
AUTH_SUBJECT = "$SYS.REQ.USER.AUTH"
DEFAULT_NATS_LISTEN = "127.0.0.1:4222"


class NatsKeyError(KezError):
    """A NATS key file is unreadable or does not hold the right kind of seed."""

    exit_code = ExitCode.STORE
    code = "nats_keys"


@attrs.frozen(repr=False)
class NatsKeys:
    """The issuer and service seeds (nkeys text). Never printed."""

    issuer_seed: bytes
    service_seed: bytes

    def issuer(self):  # noqa: ANN201 - nkeys.KeyPair (nkeys is untyped)
        import nkeys

        return nkeys.from_seed(bytearray(self.issuer_seed))

    def service(self):  # noqa: ANN201
        import nkeys

        return nkeys.from_seed(bytearray(self.service_seed))

    @property
    def issuer_public(self) -> str:
        return self.issuer().public_key.decode()

    @property
    def service_public(self) -> str:
        return self.service().public_key.decode()

    def __repr__(self) -> str:
        return f"NatsKeys(issuer={self.issuer_public}, service={self.service_public})"


def key_base(db: str, keys_dir: str | None = None) -> Path:
    """The path the key files' suffixes are appended to (see the module docstring)."""
    if keys_dir:
        return Path(keys_dir).expanduser() / "kez-server"
    if "://" in db:
        raise ConfigError(
            f"the NATS keys cannot be kept beside the database {db.split('@')[-1]!r}: "
            "pass --nats-keys DIR",
            hint="a folder for the server's nkey seeds (or set KEZ_SERVER_NATS_KEYS)",
        )
    return Path(db).expanduser().resolve()


def load_keys(db: str, keys_dir: str | None = None) -> NatsKeys:
    """The server's NATS keys, made now (atomically, 0600) when this is the first run."""
    import nkeys

    base = key_base(db, keys_dir)
    issuer = _seed(Path(str(base) + ISSUER_SUFFIX), nkeys.PREFIX_BYTE_ACCOUNT, "account")
    service = _seed(Path(str(base) + SERVICE_SUFFIX), nkeys.PREFIX_BYTE_USER, "user")
    return NatsKeys(issuer, service)


def _seed(path: Path, prefix: int, role: str) -> bytes:
    import nkeys

    if not path.exists():
        seed = nkeys.encode_seed(secrets.token_bytes(32), prefix)
        _create(path, seed + b"\n")
    try:
        seed = path.read_bytes().strip()
        got, _raw = nkeys.decode_seed(seed)
    except OSError as exc:
        raise NatsKeyError(f"cannot read the NATS key {str(path)!r}: {exc}") from exc
    except nkeys.NkeysError:
        got = None
    if got != prefix:
        raise NatsKeyError(
            f"{str(path)!r} does not hold an nkey {role} seed",
            hint="move the file away; a new key is made on the next start "
            "(then write the nats-server config again)",
        )
    return seed


def _create(path: Path, data: bytes) -> None:
    """Write a new file without ever replacing one (two first runs agree on one key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # the other run's key stays
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def render_config(keys: NatsKeys, listen: str, *, extra: str = "") -> str:
    """The nats-server config text (see the module docstring); `extra` is appended verbatim."""
    host, port = parse_bind(listen)
    service = keys.service_public
    lines = [
        "# nats-server config written by kez-server nats-config: every client but the",
        "# callout service itself is authorized by kez-server's auth callout.",
        f"host: {json.dumps(host)}",
        f"port: {port}",
        "authorization {",
        f"  users: [ {{ nkey: {json.dumps(service)} }} ]",
        "  auth_callout {",
        f"    issuer: {json.dumps(keys.issuer_public)}",
        f"    auth_users: [ {json.dumps(service)} ]",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n" + extra


def write_config(
    db: str, listen: str, out: str | Path, *, keys_dir: str | None = None, extra: str = ""
) -> Path:
    """Write the config for the server of `db` to `out` (0600: it names the service key)."""
    from kez_core.keystore import atomic_write

    text = render_config(load_keys(db, keys_dir), listen, extra=extra)
    path = Path(out).expanduser()
    try:
        atomic_write(path, text.encode(), 0o600)
    except OSError as exc:
        raise NatsKeyError(f"cannot write the nats-server config {str(path)!r}: {exc}") from exc
    return path
