"""What a person does with a file someone sent: find it in a conversation, copy it elsewhere.

`kez chat` saves (ctrl+s) or opens (ctrl+o) a file received in the open
conversation: the person picks which one (`received_files`, newest first) and
where it goes (`default_destination` is the prompt's starting value); the
choosing and copying live here so the app only asks and shows the answer. A copy never overwrites: a destination that
exists is refused (a folder gets the file's own name inside it).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import StoreError


def received_file(entry: Any) -> dict[str, Any] | None:
    """The file dict of a history entry when it is an incoming file, complete and on disk."""
    file = entry.body.get("file") if entry.body.get("kind") == "file" else None
    if (
        entry.direction == "in"
        and isinstance(file, dict)
        and file.get("state") == "complete"
        and file.get("path")
        and Path(str(file["path"])).is_file()
    ):
        return file
    return None


def received_files(entries: Iterable[Any]) -> list[tuple[Any, dict[str, Any]]]:
    """Every incoming file of a history (oldest-first entries) that is complete and on disk,
    newest first: (entry, file dict) pairs, for a person to pick one."""
    found = [(entry, file) for entry in entries if (file := received_file(entry)) is not None]
    found.reverse()
    return found


def latest_received(entries: Iterable[Any]) -> dict[str, Any] | None:
    """The newest incoming file of a history (oldest-first entries) that is complete and on
    disk: its file dict (`name`, `size`, `path`, …); None when there is none."""
    found = received_files(entries)
    return found[0][1] if found else None


def default_destination(file: dict[str, Any], folder: str | Path | None = None) -> Path:
    """Where a copy goes unless the person says otherwise: `folder` (else ~/Downloads when it
    exists, else the current folder) joined with the stored file's own name (the store chose
    it: one path part, no controls; the sender's name is never used as a path)."""
    if folder is None:
        downloads = Path.home() / "Downloads"
        folder = downloads if downloads.is_dir() else Path.cwd()
    return Path(folder) / (Path(str(file.get("path") or "file")).name or "file")


def copy_received(file: dict[str, Any], destination: str | Path) -> Path:
    """Copy a received file to `destination` (a new file's path, or a folder to put it in);
    the path written. StoreError when it would overwrite, or the copy fails."""
    source = Path(str(file.get("path") or ""))
    if not source.is_file():
        raise StoreError(f"the received file is no longer at {source}")
    target = Path(destination).expanduser()
    if target.is_dir():
        target = target / source.name
    if target.exists():
        raise StoreError(f"{target} exists already", hint="choose another name")
    try:
        with open(source, "rb") as src, open(target, "xb") as out:
            shutil.copyfileobj(src, out)
    except OSError as exc:
        raise StoreError(f"cannot copy to {target}: {exc.strerror or exc}") from exc
    return target
