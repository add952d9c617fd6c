"""Chains as files: JSON Lines, one link per line, each written as JCS + "\\n".

Reading streams the file line by line with a bounded read per line, so a
huge or endless line is refused without being held in memory. Writing is
atomic (a temporary file in the same directory, fsync, rename): a failed or
interrupted write leaves the old file as it was, and nothing is written
unless every link validates. Because every line is written in canonical
form, export → import → export gives the same bytes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..codec import MAX_OBJECT_BYTES
from ..errors import StoreError
from ..registry import Registry
from .errors import ChainError, ChainFault, ChainFileError
from .model import ChainState, Link
from .validate import ChainValidator
from .parallel import validate_stream

if TYPE_CHECKING:
    from .ops import SigchainBuilder

try:  # POSIX advisory locks keep two writers from interleaving
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]


def iter_file_lines(fp: BinaryIO, *, max_line: int = MAX_OBJECT_BYTES) -> Iterator[bytes]:
    """Lines of a binary file, each at most `max_line` bytes (ChainError `malformed` beyond)."""
    number = 0
    while True:
        line = fp.readline(max_line + 2)  # room for "\r\n"
        if not line:
            return
        number += 1
        if len(line) > max_line and not (
            line.endswith(b"\n") and len(line.rstrip(b"\r\n")) <= max_line
        ):
            raise ChainError(
                ChainFault.MALFORMED, f"line is longer than {max_line} bytes", line=number
            )
        yield line


def canonical_lines(
    lines: Iterable[bytes | str], *, registry: Registry | None = None
) -> Iterator[bytes]:
    """Validate and yield each link in canonical form (JCS + "\\n"), streaming."""
    validator = ChainValidator(registry=registry)
    for line in lines:
        link = validator.feed(line)
        if link is not None:
            yield link.line
    validator.result()


def export_chain(lines: Iterable[bytes | str], *, registry: Registry | None = None) -> bytes:
    """The whole chain as canonical JSON Lines bytes (validated)."""
    return b"".join(canonical_lines(lines, registry=registry))


def read_chain(path: str | os.PathLike[str], *, registry: Registry | None = None) -> ChainState:
    """Validate a chain file by streaming it; return its state."""
    try:
        with open(path, "rb") as fp:
            return validate_stream(iter_file_lines(fp), registry=registry)
    except OSError as exc:
        raise StoreError(f"cannot read sigchain file {path}: {exc.strerror or exc}") from exc


def read_chain_lines(path: str | os.PathLike[str], *, missing_ok: bool = False) -> list[bytes]:
    """The lines of a chain file as stored (bounded per line, not validated); [] for a
    missing file when `missing_ok`. Callers merge or validate them (`merge_copies`)."""
    path = Path(path)
    if missing_ok and not path.exists():
        return []
    try:
        with path.open("rb") as fp:
            return list(iter_file_lines(fp))
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from exc


def continue_chain(lines: list[bytes], registry: Registry | None) -> SigchainBuilder:
    """A builder that continues `lines` (a new chain when there are none); it keeps no
    lines of its own, so the caller appends `link.line` to the file (`append_links`)."""
    from .ops import SigchainBuilder

    if not lines:
        return SigchainBuilder(registry=registry, keep_lines=False)
    return SigchainBuilder.resume(lines, registry=registry, keep_lines=False)


def load_chain(
    lines: Iterable[bytes | str], *, origin: str, registry: Registry | None = None
) -> ChainState:
    """The state of a chain copy that must be valid from its first line to its last.

    For a chain that is used, not merged (the recipient of a message, a
    sender to check): any fault, an empty copy too, is a ChainFileError
    naming `origin` (a file name) and the line, never a silently shorter chain.
    """
    try:
        return validate_stream(lines, registry=registry)
    except ChainError as exc:
        raise ChainFileError.of(origin, exc) from exc


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot lock {path}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _atomic_write(path: Path, chunks: Iterable[bytes]) -> None:
    """Write chunks to a temp file beside `path`, fsync, rename. On any error nothing changes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_chain(
    path: str | os.PathLike[str], lines: Iterable[bytes | str], *, registry: Registry | None = None
) -> ChainState:
    """Validate `lines` and write them in canonical form, atomically. Returns the state."""
    return _write_validated(Path(path), lambda: lines, registry)


def _write_validated(
    target: Path, source: Callable[[], Iterable[bytes | str]], registry: Registry | None
) -> ChainState:
    """Validate the lines `source()` yields (called under the file lock) and write them atomically."""
    validator = ChainValidator(registry=registry)

    def chunks() -> Iterator[bytes]:
        for line in source():
            link = validator.feed(line)
            if link is not None:
                yield link.line
        validator.result()

    try:
        with _locked(target):
            _atomic_write(target, chunks())
    except OSError as exc:
        raise StoreError(f"cannot write sigchain file {target}: {exc.strerror or exc}") from exc
    return validator.result()


def append_links(
    path: str | os.PathLike[str],
    links: Iterable[Link | bytes | str],
    *,
    registry: Registry | None = None,
) -> ChainState:
    """Append links to a chain file (created if missing), atomically and under a lock.

    The existing file is validated first and the new links must continue it
    (their prev is checked like any link's), so two writers racing on one
    file cannot both succeed with conflicting links: the loser gets a
    ChainError (`prev` or `seqno`) and the file keeps the winner's chain.
    """
    target = Path(path)
    new = [link.line if isinstance(link, Link) else link for link in links]

    def existing_then_new() -> Iterator[bytes | str]:
        if target.exists():
            with open(target, "rb") as fp:
                yield from iter_file_lines(fp)
        yield from new

    return _write_validated(target, existing_then_new, registry)
