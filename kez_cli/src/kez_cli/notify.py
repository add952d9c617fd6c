"""Desktop notifications for `kez message listen --notify`.

`notify-send` (libnotify) when it is on PATH: run as a subprocess with an
argument list (never a shell), the sender and text made visible
(`kez_core.safetext.visible`: no control or bidi characters) and cut to a
length a notification shows. Otherwise a terminal bell on stderr. A
notification that cannot be raised is silently skipped: it must never stop
the listener.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

MAX_TITLE = 64
MAX_BODY = 200
NOTIFY_TIMEOUT = 5.0


def _short(text: str, limit: int) -> str:
    from kez_core.safetext import visible

    shown = visible(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def notify_command(title: str, body: str) -> list[str] | None:
    """The `notify-send` argument list for a notification, or None without notify-send."""
    program = shutil.which("notify-send")
    if program is None:
        return None
    # "--" ends the options: a text starting with "-" is never read as one
    return [program, "--app-name=kez", "--", _short(title, MAX_TITLE), _short(body, MAX_BODY)]


def notify(title: str, body: str) -> None:
    """Raise one notification (notify-send), or ring the terminal bell."""
    command = notify_command(title, body)
    if command is None:
        sys.stderr.write("\a")
        sys.stderr.flush()
        return
    try:
        subprocess.run(
            command,
            check=False,
            timeout=NOTIFY_TIMEOUT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        pass
