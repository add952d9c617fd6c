"""What a person does with a file someone sent: find it in a conversation, copy it elsewhere.

`kez chat` saves (ctrl+s) or opens (ctrl+o) the latest file received in the
open conversation; the choosing and copying live here so the app only asks
for a path and shows the answer. A copy never overwrites: a destination that
exists is refused (a folder gets the file's own name inside it).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import StoreError


def latest_received(entries: Iterable[Any]) -> dict[str, Any] | None:
    """The newest incoming file of a history (oldest-first entries) that is complete and on
    disk: its file dict (`name`, `size`, `path`, …); None when there is none."""
    found = None
    for entry in entries:
        file = entry.body.get("file") if entry.body.get("kind") == "file" else None
        if entry.direction == "in" and isinstance(file, dict) and file.get("state") == "complete" \
                and file.get("path") and Path(str(file["path"])).is_file():
            found = file
    return found


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
