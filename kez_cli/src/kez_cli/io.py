"""Reading inputs (FILE or `-`) and writing outputs, with typed errors."""

from __future__ import annotations

import sys
from pathlib import Path

from kez_core.codec import MAX_TEXT_CHARS
from kez_core.errors import DecodeError, SizeLimitError, StoreError


def read_input(source: str | None) -> str:
    """Text from a file, or from stdin for `-`/None. Capped, UTF-8, typed errors."""
    if source in (None, "-"):
        if sys.stdin is None or (source is None and sys.stdin.isatty()):
            raise DecodeError("nothing to read", hint="pass a FILE, or pipe the input and use -")
        data = sys.stdin.buffer.read(MAX_TEXT_CHARS * 4 + 1)
        origin = "standard input"
    else:
        path = Path(source)
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_TEXT_CHARS * 4 + 1)
        except FileNotFoundError as exc:
            raise StoreError(f"no such file: {source}") from exc
        except OSError as exc:
            raise StoreError(f"cannot read {source}: {exc.strerror}") from exc
        origin = source
    if len(data) > MAX_TEXT_CHARS * 4:
        raise SizeLimitError(f"{origin} is larger than the input cap")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"{origin} is not UTF-8 text (byte {exc.start})") from exc


def write_output(text: str, target: str | None, mode: int = 0o644) -> None:
    """Write to a file (atomically) or to stdout."""
    if target in (None, "-"):
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return
    from kez_core.keystore import atomic_write

    try:
        atomic_write(
            Path(target), (text if text.endswith("\n") else text + "\n").encode("utf-8"), mode
        )
    except OSError as exc:
        raise StoreError(f"cannot write {target}: {exc.strerror}") from exc


def read_chain_source(source: str) -> list[bytes]:
    """The lines of a chain copy named on the command line: a FILE, or `-` for stdin.

    Read as a stream of bounded lines (any file size; a line over 64 KiB is
    refused), split at `\\n` only, blank lines kept so that error messages
    name physical lines. The validator judges every line as given.
    """
    if source != "-":
        path = Path(source)
        if not path.exists():
            raise StoreError(f"no such file: {source}")
        from kez_core.sigchain import read_chain_lines

        return read_chain_lines(path)
    from kez_core.sigchain import iter_file_lines

    if sys.stdin is None:
        raise DecodeError("nothing to read", hint="pass a FILE, or pipe the input and use -")
    return list(iter_file_lines(sys.stdin.buffer))
