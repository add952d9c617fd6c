"""Identities on disk: one folder per identity under `$KEZ_HOME/identities/`.

    identities/<name>/identity.json   public facts (alg, key id, created_at, encrypted)
    identities/<name>/secret.pem      PKCS#8 PEM, mode 0600, encrypted when a passphrase is set

Every write goes to a temporary file that is fsynced and then renamed over
the target, so a crash or a full disk never leaves a half-written key; a
new identity is assembled in a temporary folder and renamed into place in
one step, so two processes creating the same name cannot both win.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

import attrs

from .errors import KeyFormatError, PassphraseError, StoreError
from .keys import Signer
from .registry import Registry, default_registry
from .timefmt import format_time, now

PassphraseProvider = Callable[[], bytes | None]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
IDENTITY_FILE = "identity.json"
SECRET_FILE = "secret.pem"
CONFIG_FILE = "config.json"


def default_home() -> Path:
    """`KEZ_HOME`, else the platform's per-user config folder for kez."""
    env = os.environ.get("KEZ_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("kez"))


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` so readers see the old content or the new, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@attrs.frozen
class IdentityRecord:
    """The public facts about a stored identity."""

    name: str
    alg: str
    key_id: str
    created_at: str
    encrypted: bool
    path: str
    identity_id: str = ""  # the chain's identity id; the first primary's key id (survives rotation)

    def to_public_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "alg": self.alg,
            "key_id": self.key_id,
            "identity_id": self.identity_id or self.key_id,
            "created_at": self.created_at,
            "encrypted": self.encrypted,
        }


class Keystore:
    def __init__(self, home: Path | str | None = None, registry: Registry | None = None) -> None:
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.registry = registry or default_registry()

    @property
    def identities_dir(self) -> Path:
        return self.home / "identities"

    # ----------------------------------------------------------------- reading

    def list(self) -> list[IdentityRecord]:
        if not self.identities_dir.is_dir():
            return []
        records = []
        for folder in sorted(self.identities_dir.iterdir()):
            if folder.name.startswith(".") or not (folder / IDENTITY_FILE).is_file():
                continue
            records.append(self._read_record(folder))
        return records

    def _read_record(self, folder: Path) -> IdentityRecord:
        try:
            data = json.loads((folder / IDENTITY_FILE).read_text("utf-8"))
            return IdentityRecord(
                name=folder.name,
                alg=data["alg"],
                key_id=data["key_id"],
                created_at=data["created_at"],
                encrypted=bool(data["encrypted"]),
                path=str(folder),
                identity_id=data.get("identity_id") or data["key_id"],
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"identity file {folder / IDENTITY_FILE} is unreadable: {exc}",
                hint="restore it from a backup or re-import the key",
            ) from exc

    def _config(self) -> dict[str, object]:
        try:
            data = json.loads((self.home / CONFIG_FILE).read_text("utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def default_name(self) -> str | None:
        name = self._config().get("default_identity")
        if isinstance(name, str) and (self.identities_dir / name / IDENTITY_FILE).is_file():
            return name
        records = self.list()
        return records[0].name if len(records) == 1 else None

    def set_default(self, name: str) -> None:
        self.get(name)
        config = self._config()
        config["default_identity"] = name
        atomic_write(self.home / CONFIG_FILE, json.dumps(config, indent=2).encode(), 0o644)

    def get(self, name: str | None = None) -> IdentityRecord:
        if name is None:
            name = self.default_name()
            if name is None:
                names = [r.name for r in self.list()]
                if not names:
                    raise StoreError(
                        f"no identity in {self.home}", hint="create one with `kez identity new`"
                    )
                raise StoreError(
                    f"several identities ({', '.join(names)}) and no default",
                    hint="pass --identity NAME or run `kez identity default NAME`",
                )
        self._check_name(name)
        folder = self.identities_dir / name
        if not (folder / IDENTITY_FILE).is_file():
            raise StoreError(f"no identity named {name!r} in {self.home}", hint="`kez identity list` shows them")
        return self._read_record(folder)

    def signer(self, name: str | None, passphrase: PassphraseProvider) -> Signer:
        record = self.get(name)
        alg = self.registry.key_algorithm(record.alg)
        try:
            pem = (Path(record.path) / SECRET_FILE).read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read the secret key of {record.name!r}: {exc}") from exc
        secret = alg.secret_from_pem(pem, passphrase() if record.encrypted else None)
        if secret is None:
            raise StoreError(f"the key file of {record.name!r} does not hold a {record.alg} key")
        signer = Signer(alg, secret)
        if signer.key_id != record.key_id:
            raise StoreError(f"the key file of {record.name!r} does not match its key id {record.key_id}")
        return signer

    def chain_path(self, identity_id: str) -> Path:
        """Where the local copy of an identity's sigchain lives."""
        return self.home / "chains" / f"{identity_id.replace(':', '-')}.jsonl"

    def find_by_identity(self, identity_id: str) -> IdentityRecord | None:
        return next((r for r in self.list() if r.identity_id == identity_id), None)

    # ----------------------------------------------------------------- writing

    def replace_primary(self, name: str, signer: Signer, passphrase: bytes | None) -> IdentityRecord:
        """Make `signer` the primary of identity `name` (after a rotate link), keeping its identity id.

        The retired primary's key file is kept beside it as `retired-<hex>.pem`
        (it signs nothing new, but its owner may want it); the swap of the
        secret and the facts are each atomic, secret first, so a crash in
        between leaves a key file that `signer()` reports as not matching
        rather than a lost key.
        """
        record = self.get(name)
        folder = Path(record.path)
        old_secret = folder / SECRET_FILE
        if old_secret.exists():
            retired = folder / f"retired-{record.key_id.split(':', 1)[1]}.pem"
            if not retired.exists():
                atomic_write(retired, old_secret.read_bytes(), 0o600)
        atomic_write(old_secret, signer.alg.secret_to_pem(signer.secret, passphrase), 0o600)
        facts = {
            "alg": signer.alg.name,
            "key_id": signer.key_id,
            "identity_id": record.identity_id or record.key_id,
            "created_at": record.created_at,
            "encrypted": bool(passphrase),
        }
        atomic_write(folder / IDENTITY_FILE, json.dumps(facts, indent=2).encode(), 0o644)
        return self.get(name)

    @staticmethod
    def _check_name(name: str) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise StoreError(
                f"identity name {name!r} is not allowed",
                hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )

    def create(self, name: str, alg: str, passphrase: bytes | None) -> IdentityRecord:
        return self.add(name, Signer.generate(alg, self.registry), passphrase)

    def add(self, name: str, signer: Signer, passphrase: bytes | None) -> IdentityRecord:
        """Store a key under `name`; refuses to overwrite an existing identity."""
        self._check_name(name)
        final = self.identities_dir / name
        if (final / IDENTITY_FILE).exists():
            raise StoreError(f"an identity named {name!r} already exists", hint="choose another --name")
        for record in self.list():
            if record.key_id == signer.key_id:
                raise StoreError(f"this key is already stored as identity {record.name!r}")
        self.identities_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        tmp = self.identities_dir / f".new-{name}-{secrets.token_hex(6)}"
        tmp.mkdir(mode=0o700)
        try:
            atomic_write(tmp / SECRET_FILE, signer.alg.secret_to_pem(signer.secret, passphrase), 0o600)
            facts = {
                "alg": signer.alg.name,
                "key_id": signer.key_id,
                "created_at": format_time(now()),
                "encrypted": bool(passphrase),
            }
            atomic_write(tmp / IDENTITY_FILE, json.dumps(facts, indent=2).encode(), 0o644)
            if final.exists() and not any(final.iterdir()):
                final.rmdir()  # an empty leftover folder from an interrupted run
            os.rename(tmp, final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if final.exists():
                raise StoreError(f"an identity named {name!r} already exists") from exc
            raise StoreError(f"could not store identity {name!r}: {exc}") from exc
        _fsync_dir(self.identities_dir)
        configured = self._config().get("default_identity")
        if not (isinstance(configured, str) and (self.identities_dir / configured / IDENTITY_FILE).is_file()):
            self.set_default(name)  # the first identity becomes the default
        return self.get(name)

    def export_secret(
        self, name: str | None, form: str, passphrase: PassphraseProvider, export_passphrase: bytes | None = None
    ) -> str:
        """The secret key as `pem`, `hex`, `nsec` or `ncryptsec` (the last needs a passphrase)."""
        signer = self.signer(name, passphrase)
        if form == "pem":
            return signer.alg.secret_to_pem(signer.secret, export_passphrase).decode("ascii")
        if form == "ncryptsec":
            if signer.alg.name != "nostr":
                raise KeyFormatError("ncryptsec holds nostr (secp256k1) keys only")
            if not export_passphrase:
                raise PassphraseError("ncryptsec needs a passphrase to encrypt with", hint="set KEZ_PASSPHRASE")
            from . import nip49  # scrypt: imported by the two commands that use it

            return nip49.encrypt(signer.secret, _password_text(export_passphrase))
        return signer.alg.export_secret(signer.secret, form)


def _password_text(passphrase: bytes) -> str:
    """NIP-49 passwords are Unicode text; bytes that are not UTF-8 cannot be one."""
    try:
        return passphrase.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PassphraseError(
            "the passphrase is not UTF-8 text; an ncryptsec password must be", hint="check the terminal encoding"
        ) from exc


def signer_from_text(
    text: str, *, alg: str | None, passphrase: PassphraseProvider, registry: Registry | None = None
) -> Signer:
    """A secret key from PEM, nsec, ncryptsec or hex (hex needs `alg`)."""
    registry = registry or default_registry()
    text = text.strip()
    if text.startswith("-----BEGIN"):
        pem = text.encode("ascii", "replace")
        secret_passphrase = passphrase() if b"ENCRYPTED" in pem else None
        candidates = [registry.key_algorithm(alg)] if alg else registry.key_algorithms()
        for candidate in candidates:
            secret = candidate.secret_from_pem(pem, secret_passphrase)
            if secret is not None:
                return Signer(candidate, secret)
        raise KeyFormatError("the PEM key is of a type no key algorithm here handles")
    if text.startswith("ncryptsec1"):
        password = passphrase()
        if not password:
            raise PassphraseError("an ncryptsec key needs its password", hint="set KEZ_PASSPHRASE")
        from . import nip49

        return Signer(registry.key_algorithm("nostr"), nip49.decrypt(text, _password_text(password)))
    if text.startswith("nsec1"):
        nostr = registry.key_algorithm("nostr")
        return Signer(nostr, nostr.import_secret(text))
    if alg is None:
        raise KeyFormatError(
            "cannot tell which algorithm this key is for",
            hint="pass --alg ed25519 or --alg nostr for a hex secret",
        )
    chosen = registry.key_algorithm(alg)
    secret = chosen.import_secret(text)
    if secret is None:
        raise KeyFormatError(f"not a {alg} secret key in any form this tool reads (PEM, hex, nsec, ncryptsec)")
    return Signer(chosen, secret)
