"""Identities on disk: one folder per identity under `$KEZ_HOME/identities/`.

    identities/<name>/identity.json   public facts (alg, key id, created_at, encrypted)
    identities/<name>/secret.pem      PKCS#8 PEM, mode 0600, encrypted when a passphrase is set
    identities/<name>/retired-<hex>.pem   a former primary's secret, kept after a rotation
    identities/<name>/pending-<alg>-<hex>.pem   a rotation's new secret until it is installed

Every write goes to a temporary file that is fsynced and then renamed over
the target, so a crash or a full disk never leaves a half-written key; a
new identity is assembled in a temporary folder (locked by its creator) and
renamed into place in one step, so two processes creating the same name
cannot both win, and a folder whose creator was killed is removed at the
next open. Folders are 0700 whatever the umask. A primary-key change is
staged, published, then installed (`stage_primary`, `settle`): a crash at
any point leaves a state that `settle` finishes or undoes by reading the
identity's chain (docs/sigchain.md, "Changing keys").
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from .errors import KezError, KeyFormatError, PassphraseError, StoreError
from .keyfiles import (
    create_synced,
    temp_name,
    exclusive_write,
    fsync_dir,
    keep_copy,
    locked,
    private_dir,
    sweep_new_folders,
    sweep_temp_files,
)
from .keys import Signer
from .registry import Registry, default_registry
from .timefmt import format_time, now

PassphraseProvider = Callable[[], bytes | None]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
IDENTITY_FILE = "identity.json"
SECRET_FILE = "secret.pem"
CONFIG_FILE = "config.json"
PENDING_PREFIX = "pending-"
NEW_PREFIX = ".new-"
_RECORD_FIELDS: tuple[tuple[str, type], ...] = (
    ("alg", str),
    ("key_id", str),
    ("created_at", str),
    ("encrypted", bool),
)


def default_home() -> Path:
    """`KEZ_HOME`, else the platform's per-user config folder for kez."""
    env = os.environ.get("KEZ_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("kez"))


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` so readers see the old content or the new, never a mix."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        create_synced(tmp, data, mode)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        int: "a number",
        float: "a number",
    }.get(type(value), "null")


def _parse_record(folder: Path, data: object) -> IdentityRecord:
    """Check the shape of an identity.json (ValueError says what is wrong)."""
    if not isinstance(data, dict):
        raise ValueError(f"it holds {_json_type(data)}, not an object")
    for field, kind in _RECORD_FIELDS:
        if field not in data:
            raise ValueError(f"{field!r} is missing")
        if type(data[field]) is not kind:
            wanted = "true or false" if kind is bool else "a string"
            raise ValueError(f"{field!r} must be {wanted}, not {_json_type(data[field])}")
    identity_id = data.get("identity_id")
    if identity_id is not None and type(identity_id) is not str:
        raise ValueError(f"'identity_id' must be a string, not {_json_type(identity_id)}")
    return IdentityRecord(
        name=folder.name,
        alg=data["alg"],
        key_id=data["key_id"],
        created_at=data["created_at"],
        encrypted=data["encrypted"],
        path=str(folder),
        identity_id=identity_id or data["key_id"],
    )


def staged_name(key_id: str) -> str:
    """File name of a rotation's new secret before it is installed: `pending-<alg>-<hex>.pem`."""
    return f"{PENDING_PREFIX}{key_id.replace(':', '-', 1)}.pem"


def _staged_key_id(path: Path) -> str:
    return path.name[len(PENDING_PREFIX) : -len(".pem")].replace("-", ":", 1)


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
        self._held: dict[str, int] = {}  # identity name -> depth of `locked(name)` in this object
        self._swept = False

    @property
    def identities_dir(self) -> Path:
        return self.home / "identities"

    # ----------------------------------------------------------------- reading

    def _sweep(self) -> None:
        """Once per keystore object: remove what a killed `identity new` or write left behind."""
        if self._swept:
            return
        self._swept = True
        if not self.identities_dir.is_dir():
            return
        sweep_new_folders(self.identities_dir, NEW_PREFIX)
        for folder in self.identities_dir.iterdir():
            if not folder.name.startswith(".") and folder.is_dir():
                sweep_temp_files(folder)
                sweep_temp_files(folder / "inbox")  # inbox secrets are written the same way

    def scan(self) -> tuple[list[IdentityRecord], list[StoreError]]:
        """Every readable identity, and one error per identity folder that cannot be read."""
        self._sweep()
        if not self.identities_dir.is_dir():
            return [], []
        records, broken = [], []
        for folder in sorted(self.identities_dir.iterdir()):
            if folder.name.startswith(".") or not (folder / IDENTITY_FILE).is_file():
                continue
            try:
                records.append(self._read_record(folder))
            except StoreError as exc:
                broken.append(exc)
        return records, broken

    def list(self) -> list[IdentityRecord]:
        """The readable identities (a damaged one is left out; `scan` reports it; `get` names it)."""
        return self.scan()[0]

    def _read_record(self, folder: Path) -> IdentityRecord:
        path = folder / IDENTITY_FILE
        try:
            return _parse_record(folder, json.loads(path.read_text("utf-8")))
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"identity file {path} is unreadable: {exc}",
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
            raise StoreError(
                f"no identity named {name!r} in {self.home}", hint="`kez identity list` shows them"
            )
        self._sweep()
        if name not in self._held and any(folder.glob(PENDING_PREFIX + "*.pem")):
            self.settle(name)
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
            raise StoreError(
                f"the key file of {record.name!r} does not match its key id {record.key_id}"
            )
        return signer

    def chain_path(self, identity_id: str) -> Path:
        """Where the local copy of an identity's sigchain lives."""
        return self.home / "chains" / f"{identity_id.replace(':', '-')}.jsonl"

    def find_by_identity(self, identity_id: str) -> IdentityRecord | None:
        return next((r for r in self.list() if r.identity_id == identity_id), None)

    # ----------------------------------------------------------------- writing

    @contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """Hold the lock of identity `name` (re-entrant within this object) while changing its keys."""
        depth = self._held.get(name, 0)
        if depth:
            self._held[name] = depth + 1
            try:
                yield
            finally:
                self._held[name] -= 1
            return
        self._check_name(name)
        with locked(self.identities_dir / name):
            self._held[name] = 1
            try:
                yield
            finally:
                del self._held[name]

    def set_identity_id(self, name: str, identity_id: str) -> IdentityRecord:
        """Record that identity `name`'s key speaks for chain `identity_id` (a device of it).

        The record's `identity_id` is what the chain cache, the messaging
        service and the transports' proofs name; the caller has checked the
        chain lists this key (kez_core.devices.join_identity)."""
        folder = self.identities_dir / name
        with self.locked(name):
            record = self._read_record(folder)
            facts = {
                "alg": record.alg,
                "key_id": record.key_id,
                "identity_id": identity_id,
                "created_at": record.created_at,
                "encrypted": record.encrypted,
            }
            atomic_write(folder / IDENTITY_FILE, json.dumps(facts, indent=2).encode(), 0o644)
            return self._read_record(folder)

    def staged_path(self, name: str, key_id: str) -> Path:
        """Where a rotation's new secret waits (`pending-<alg>-<hex>.pem`) until it is installed."""
        self._check_name(name)
        return self.identities_dir / name / staged_name(key_id)

    def stage_primary(self, name: str, key_id: str, pem: bytes) -> Path:
        """Store the secret (PEM) of a coming primary beside the current one, never over an existing file.

        Nothing reads it as the identity's key until its rotate link is in the
        chain and `settle` installs it; until then the old primary stays usable.
        """
        self.get(name)
        staged = self.staged_path(name, key_id)
        try:
            exclusive_write(staged, pem, 0o600)
        except FileExistsError as exc:
            raise StoreError(
                f"{staged} already exists: an earlier key change for {name!r} did not finish",
                hint="run the command again: opening the identity settles it",
            ) from exc
        except OSError as exc:
            raise StoreError(
                f"cannot store the new key of {name!r}: {exc.strerror or exc}"
            ) from exc
        return staged

    def settle(self, name: str) -> IdentityRecord:
        """Finish or undo a primary-key change that stopped half-way; the identity's record after.

        For each staged `pending-*` key, under the identity's lock:
        the record already names it → move it into `secret.pem` (the old
        one is kept as `retired-<hex>.pem` first); the chain names it as the
        current primary → switch the record to it, then move it in; the
        chain does not name it → it was never published: delete it. A chain
        that cannot be read changes nothing.
        """
        folder = self.identities_dir / name
        with self.locked(name):
            record = self._read_record(folder)
            staged_files = sorted(folder.glob(PENDING_PREFIX + "*.pem"))
            if not staged_files:
                return record
            current = self._chain_primary(record.identity_id)
            for staged in staged_files:
                key_id = _staged_key_id(staged)
                try:
                    if key_id == record.key_id:
                        self._install(folder, staged)
                    elif current is not None and key_id == current:
                        record = self._switch(folder, record, staged, key_id)
                    elif current is not None:
                        staged.unlink(missing_ok=True)
                        fsync_dir(folder)
                except OSError as exc:
                    raise StoreError(
                        f"cannot finish the key change of {name!r}: {exc.strerror or exc}",
                        hint=f"check the permissions of {folder}",
                    ) from exc
            return self._read_record(folder)

    def _chain_primary(self, identity_id: str) -> str | None:
        from .sigchain.io import read_chain

        path = self.chain_path(identity_id)
        if not path.is_file():
            return None
        try:
            state = read_chain(path, registry=self.registry)
        except KezError:
            return None
        return state.current_primary if state is not None else None

    def _switch(
        self, folder: Path, record: IdentityRecord, staged: Path, key_id: str
    ) -> IdentityRecord:
        """Make the staged key the identity's primary: retire the old secret, rewrite the record, install."""
        secret = folder / SECRET_FILE
        if secret.exists():
            keep_copy(secret, folder / f"retired-{record.key_id.split(':', 1)[1]}.pem")
        facts = {
            "alg": key_id.split(":", 1)[0],
            "key_id": key_id,
            "identity_id": record.identity_id or record.key_id,
            "created_at": record.created_at,
            "encrypted": b"ENCRYPTED" in staged.read_bytes(),
        }
        atomic_write(folder / IDENTITY_FILE, json.dumps(facts, indent=2).encode(), 0o644)
        self._install(folder, staged)
        return self._read_record(folder)

    @staticmethod
    def _install(folder: Path, staged: Path) -> None:
        # the record names the staged key, so the old secret.pem was kept as retired-* before
        os.replace(staged, folder / SECRET_FILE)
        fsync_dir(folder)

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
            raise StoreError(
                f"an identity named {name!r} already exists", hint="choose another --name"
            )
        for record in self.list():
            if record.key_id == signer.key_id:
                raise StoreError(f"this key is already stored as identity {record.name!r}")
        private_dir(self.home)
        os.chmod(self.home, 0o700)
        private_dir(self.identities_dir)
        self._sweep()
        tmp = self.identities_dir / f"{NEW_PREFIX}{name}-{secrets.token_hex(6)}"
        tmp.mkdir(mode=0o700)
        try:
            with locked(tmp):  # held until the rename: a sweeper sees a live creator
                os.chmod(tmp, 0o700)
                atomic_write(
                    tmp / SECRET_FILE, signer.alg.secret_to_pem(signer.secret, passphrase), 0o600
                )
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
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if not isinstance(exc, OSError):
                raise
            if final.exists():
                raise StoreError(f"an identity named {name!r} already exists") from exc
            raise StoreError(f"could not store identity {name!r}: {exc}") from exc
        fsync_dir(self.identities_dir)
        configured = self._config().get("default_identity")
        if not (
            isinstance(configured, str)
            and (self.identities_dir / configured / IDENTITY_FILE).is_file()
        ):
            self.set_default(name)  # the first identity becomes the default
        return self.get(name)

    def export_secret(
        self,
        name: str | None,
        form: str,
        passphrase: PassphraseProvider,
        export_passphrase: bytes | None = None,
    ) -> str:
        """The secret key as `pem`, `hex`, `nsec` or `ncryptsec` (the last needs a passphrase)."""
        signer = self.signer(name, passphrase)
        if form == "pem":
            return signer.alg.secret_to_pem(signer.secret, export_passphrase).decode("ascii")
        if form == "ncryptsec":
            if signer.alg.name != "nostr":
                raise KeyFormatError("ncryptsec holds nostr (secp256k1) keys only")
            if not export_passphrase:
                raise PassphraseError(
                    "ncryptsec needs a passphrase to encrypt with", hint="set KEZ_PASSPHRASE"
                )
            from . import nip49  # scrypt: imported by the two commands that use it

            return nip49.encrypt(signer.secret, _password_text(export_passphrase))
        return signer.alg.export_secret(signer.secret, form)


def passphrase_bytes(text: str, *, source: str) -> bytes:
    """A passphrase typed or set as text, as the UTF-8 bytes keys are sealed with.

    A terminal or environment that is not UTF-8 hands Python undecodable bytes
    as lone surrogates (`\\udcff`); such text has no UTF-8 form, so it is
    refused here, before anything is written, instead of failing half-way.
    """
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PassphraseError(
            f"the passphrase from {source} is not valid UTF-8",
            hint="use a UTF-8 terminal (LANG=C.UTF-8) or set KEZ_PASSPHRASE to UTF-8 text",
        ) from exc


def _password_text(passphrase: bytes) -> str:
    """NIP-49 passwords are Unicode text; bytes that are not UTF-8 cannot be one."""
    try:
        return passphrase.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PassphraseError(
            "the passphrase is not UTF-8 text; an ncryptsec password must be",
            hint="check the terminal encoding",
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

        return Signer(
            registry.key_algorithm("nostr"), nip49.decrypt(text, _password_text(password))
        )
    if text.startswith("nsec1"):
        nostr = registry.key_algorithm("nostr")
        secret = nostr.import_secret(text)
        if secret is None:
            raise KeyFormatError("not an nsec key the nostr key algorithm reads")
        return Signer(nostr, secret)
    if alg is None:
        raise KeyFormatError(
            "cannot tell which algorithm this key is for",
            hint="pass --alg ed25519 or --alg nostr for a hex secret",
        )
    chosen = registry.key_algorithm(alg)
    secret = chosen.import_secret(text)
    if secret is None:
        raise KeyFormatError(
            f"not a {alg} secret key in any form this tool reads (PEM, hex, nsec, ncryptsec)"
        )
    return Signer(chosen, secret)
