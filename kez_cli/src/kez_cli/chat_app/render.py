"""Outside text as Textual-ready `rich.text.Text`, never markup.

Names, handles, message bodies and file names come from other people and
servers: each goes through `kez_core.safetext.visible` and into a `Text`
object, so `[b]` or an ESC sequence in a message is shown as what it is.
Pure functions of their inputs (and an injected "now"), so snapshot tests
get the same screen every run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text

from kez_core.safetext import visible

STATE_MARKS = {"sending": "…", "sent": "✓", "delivered": "✓✓", "read": "✓✓"}


def badge(unread: int) -> str:
    """The unread count as the sidebar shows it: "" for none, "99+" past 99."""
    if unread <= 0:
        return ""
    return "99+" if unread > 99 else str(unread)


def peer_label(row: dict[str, Any]) -> str:
    """A conversation's name: its contact name, else its handle, else a short identity id."""
    name = row.get("contact") or row.get("handle")
    if name:
        return visible(str(name))
    peer = str(row.get("peer", "?"))
    return visible(peer if len(peer) <= 24 else peer[:21] + "…")


SIDEBAR_TEXT = 22  # columns of a sidebar line: a long name is cut so its badge still shows


def conversation_line(row: dict[str, Any]) -> Text:
    count = badge(int(row.get("unread") or 0))
    name = peer_label(row)
    room = SIDEBAR_TEXT - (len(count) + 3 if count else 0)
    if len(name) > room:
        name = name[: room - 1] + "…"
    text = Text(name, style="bold" if row.get("unread") else "")
    if count:
        text.append(f" ({count})", style="reverse")
    return text


def short_time(created_at: str, now: datetime) -> str:
    """HH:MM today, else the date: the time under a bubble."""
    try:
        when = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return visible(created_at)
    if when.tzinfo is not None and now.tzinfo is not None:
        when = when.astimezone(now.tzinfo)
    return when.strftime("%H:%M") if when.date() == now.date() else when.strftime("%Y-%m-%d %H:%M")


def body_text(body: dict[str, Any], file: dict[str, Any] | None = None) -> str:
    """What a bubble says: the text, or one line about a file."""
    if isinstance(file, dict):
        from kez_core.chat.files import describe

        return visible(describe(file))
    text = body.get("text")
    if body.get("kind") == "text" and isinstance(text, str):
        return visible(text, multiline=True)
    return visible(f"({body.get('kind', 'unknown')} message)")


def picture_text(file: dict[str, Any]) -> str:
    """The card under a picture shown inline: its name and size (ctrl+s/ctrl+o reach the file)."""
    import json

    return visible(
        f"picture {json.dumps(str(file.get('name', 'picture')), ensure_ascii=False)} "
        f"({file.get('size', '?')} bytes)"
    )


def bubble(entry: Any, now: datetime, *, picture: bool = False) -> Text:
    """One message: body, then a dim footer with time, state (outgoing) and transports.
    `picture`: the file is shown inline above, so its card is one short line."""
    data = entry.to_json()
    file = data.get("file")
    text = Text(
        picture_text(file) if picture and isinstance(file, dict) else body_text(entry.body, file)
    )
    footer = [short_time(entry.created_at, now)]
    if entry.direction == "out":
        footer.append(f"{STATE_MARKS.get(entry.state, '')} {entry.state}".strip())
    if entry.via:
        footer.append(f"via {visible(entry.via)}")
    text.append("\n" + "  ".join(footer), style="dim")
    return text
