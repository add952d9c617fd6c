"""Private files on disk: folders that are 0700 whatever the umask, key files
that are created once and never overwritten, per-folder locks, and the
sweeping of what a killed process left behind.

Why a module of its own: the keystore, the inbox keyring and the key-change
service all write secrets, and each needs the same three guarantees (nobody
else can read it, an existing key file is never replaced, a crash leaves
either nothing or the whole file), so they share these few functions.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import StoreError

try:  # POSIX advisory locks; elsewhere locking is a no-op
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
STALE_SECONDS = 60  # a temp file older than this was left by a process that died
_NO_HARD_LINKS = {
    errno.EPERM,
    errno.ENOTSUP,
    errno.EOPNOTSUPP,
    errno.EXDEV,
    errno.EMLINK,
    errno.ENOSYS,
}


def private_dir(path: Path) -> Path:
    """Create `path` and its missing parents with mode 0700 (mkdir's mode is masked by the umask)."""
    missing = []
    folder = Path(path)
    while not folder.is_dir():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # made by a concurrent process: its own mode stays
        os.chmod(folder, 0o700)
    return Path(path)


def fsync_dir(folder: Path) -> None:
    """Make a rename or link in `folder` durable (best effort: some filesystems refuse)."""
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


def exclusive_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create `path` holding `data`, or raise FileExistsError: never replaces an existing file.

    The bytes go to a temporary file (fsynced, mode set) that is then hard-linked
    to `path`; `link` fails when the name is taken, so this is atomic and
    exclusive at once. Filesystems without hard links get an O_EXCL create
    written in place instead.
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        create_synced(tmp, data, mode)
        os.chmod(tmp, mode)
        try:
            os.link(tmp, path)
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            _excl_in_place(path, data, mode)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    fsync_dir(path.parent)


def temp_name(path: Path) -> Path:
    """A fresh hidden temporary name beside `path` (`.NAME.<hex>.tmp`: swept at the next start)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def create_synced(path: Path, data: bytes, mode: int) -> None:
    """Create `path` (never an existing one: O_EXCL) holding `data`, flushed to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _excl_in_place(path: Path, data: bytes, mode: int) -> None:
    try:
        create_synced(path, data, mode)
    except FileExistsError:
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def keep_copy(source: Path, target: Path) -> None:
    """Make `target` hold what `source` holds, unless `target` exists (it is never replaced)."""
    try:
        os.link(source, target)
    except FileExistsError:
        return
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        try:
            exclusive_write(target, source.read_bytes(), 0o600)
        except FileExistsError:
            return
    fsync_dir(target.parent)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (its `.lock` file) for the duration."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot lock {folder}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _held_elsewhere(lock: Path) -> bool | None:
    """True when a live process holds `lock`, False when nobody does, None when it does not exist."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return None
    except OSError:
        return True  # cannot tell: treat it as live
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _age(path: Path) -> float:
    try:
        return time.time() - path.lstat().st_mtime
    except OSError:
        return 0.0


def sweep_new_folders(parent: Path, prefix: str) -> list[Path]:
    """Remove `<prefix>*` folders under `parent` whose creator died; the paths removed.

    A creator holds the lock of its folder (`.lock` inside) from just after
    `mkdir` until the folder is renamed into place. A folder whose lock
    nobody holds, or that has no lock and is older than a minute, is what a
    killed process left: it may hold a secret key, so it goes.
    """
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_dir() or entry.is_symlink():
            continue
        held = _held_elsewhere(entry / LOCK_FILE)
        if held or (held is None and _age(entry) < STALE_SECONDS) or _age(entry) < 2:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def sweep_temp_files(folder: Path) -> list[Path]:
    """Remove `.*.tmp` files older than a minute from `folder` (left by a write that was killed)."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if name.startswith(".") and name.endswith(".tmp") and _age(entry) >= STALE_SECONDS:
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
    return removed
