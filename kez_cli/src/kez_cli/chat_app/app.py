"""The `kez chat` Textual app: sidebar, thread, compose box, and modal screens.

Every action calls the messaging service (`ChatSession.service`); the app only
keeps what is on screen (the open peer, the bubbles shown). Outside text reaches widgets only as `Text`
objects built in `render` (markup off). Time comes from `clock`, and the
size from the terminal, so tests and snapshots can pin both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DirectoryTree, Input, Label, ListItem, ListView, Static, TextArea

from kez_core.errors import KezError
from kez_core.safetext import visible
from kez_core.timefmt import now as utc_now

from . import render
from .session import ChatSession

HELP = (
    ("enter", "send the message (in the compose box)"),
    ("ctrl+j", "new line in the message"),
    ("up, down", "what you sent before (on the first, last line)"),
    ("/file PATH", "send a file (type it in the compose box)"),
    ("ctrl+t", "pick a file to send, from a folder view"),
    ("ctrl+n", "new conversation by handle (who it is, first)"),
    ("ctrl+r", "name the open conversation's contact"),
    ("ctrl+b", "block or unblock the open conversation"),
    ("ctrl+f", "search the open conversation"),
    ("f2", "who it is: devices, claims, safety number"),
    ("ctrl+s", "copy a received file: pick it, then where"),
    ("ctrl+o", "open a received file: pick it (xdg-open)"),
    ("tab, shift+tab", "move between the lists and the compose box"),
    ("escape", "close a dialog, or go to the conversation list"),
    ("? / f1", "this help"),
    ("ctrl+q", "quit"),
)


def _error(exc: BaseException) -> str:
    if isinstance(exc, KezError):
        return visible(exc.message + (f" ({exc.hint})" if getattr(exc, "hint", None) else ""))
    return visible(f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------- widgets


class ComposeArea(TextArea):
    """The compose box: enter sends, ctrl+j adds a line, up/down walk what you sent before."""

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, **kwargs)
        self.sent: list[str] = []
        self._pos: int | None = None

    async def _on_key(self, event: Any) -> None:
        key = event.key
        if key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text
            if text.strip():
                self.sent.append(text)
                self._pos = None
                self.post_message(self.Submitted(text))
                self.clear()
            return
        if key in ("ctrl+j", "shift+enter", "newline"):
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        if key == "up" and self.sent and self.cursor_location[0] == 0:
            event.stop()
            event.prevent_default()
            self._pos = len(self.sent) - 1 if self._pos is None else max(0, self._pos - 1)
            self.load_text(self.sent[self._pos])
            return
        if (
            key == "down"
            and self._pos is not None
            and self.cursor_location[0] == self.document.line_count - 1
        ):
            event.stop()
            event.prevent_default()
            self._pos += 1
            if self._pos >= len(self.sent):
                self._pos = None
                self.load_text("")
            else:
                self.load_text(self.sent[self._pos])
            return
        await super()._on_key(event)


class PeerItem(ListItem):
    """A conversation in the sidebar; `peer` is the identity id."""

    def __init__(self, peer: str, line: Text) -> None:
        super().__init__(Label(line))
        self.peer = peer


THREAD_WINDOW = 40  # bubbles mounted when a conversation opens, and per page-up (page-down) past the top (bottom)
GC_IDLE = (
    2.0  # seconds without a key or click before the app runs a full garbage collection (_tame_gc)
)
_GC_HOLDERS: list[
    Any
] = []  # the apps running that hold the collector (_tame_gc), and its thresholds before
_GC_SAVED: list[tuple[int, int, int]] = []
THREAD_MOUNTED = (
    160  # at most this many bubbles are widgets at once: the far end of the window is unmounted
)


class Thread(VerticalScroll):
    """The open conversation: a sliding window over its history, never the whole history as
    widgets. A frame costs Textual time in proportion to the widgets in the container (a
    10,000-message thread would take seconds per frame), and a mount in proportion to the
    widgets mounted, so the window is mounted in small steps (`THREAD_WINDOW`) and kept
    bounded (`THREAD_MOUNTED`). A page-up that would reach the top mounts the messages
    before (and unmounts the far bottom) and then moves up a page into them, so no press
    stops at an edge while there is more; page-down near the bottom does the reverse."""

    def action_page_up(self) -> None:
        page = self.scrollable_content_region.height
        if self.scroll_y - page <= 0 and getattr(self.app, "load_earlier", lambda page: False)(
            page=page
        ):
            return
        super().action_page_up()

    def action_page_down(self) -> None:
        page = self.scrollable_content_region.height
        if self.scroll_y + page >= self.max_scroll_y and getattr(
            self.app, "load_later", lambda page: False
        )(page=page):
            return
        super().action_page_down()

    def keep_place(self, anchor: Widget, offset: float, move: int) -> None:
        """After a mount above or an unmount above: the view back where it was relative to
        `anchor` (`offset` lines below its top), then `move` lines on (a page up or down)."""

        def restore() -> None:
            if anchor.is_attached:
                self.scroll_to(
                    y=max(0, anchor.virtual_region.y + offset + move), animate=False, immediate=True
                )

        self.call_after_refresh(restore)


class Bubble(Static):
    picture: str | None = None  # an ImageBubble's file; a plain bubble shows none

    def __init__(self, text: Text, outgoing: bool) -> None:
        super().__init__(text, classes="bubble out" if outgoing else "bubble in")


def image_widget_class() -> type[Widget]:
    """textual-image's widget for this terminal: Sixel or Kitty's graphics protocol where the
    terminal answered for them, else coloured half-blocks (which any Textual screen shows,
    `--web` and Pilot included). Importing it asks the terminal, so `kez chat` imports it
    before the app starts (`prepare_images`); later it only reads the cached answer."""
    from textual_image.renderable import Image as Auto
    from textual_image.renderable.unicode import Image as Unicode
    from textual_image.widget import HalfcellImage, Image

    return HalfcellImage if Auto is Unicode else Image


def prepare_images() -> None:
    """Ask the terminal what pictures it can show, while it is still ours to ask (before
    `App.run`); a terminal that does not answer gets half-blocks."""
    try:
        image_widget_class()
    except Exception:  # noqa: BLE001 - a terminal query that fails must not stop the chat
        pass


IMAGE_BOX = (40, 12)  # cells: the most a picture takes in a bubble
_DECODING = threading.BoundedSemaphore(
    2
)  # pictures decoded at once (each may need ~100 MB while it decodes)


class ImageBubble(Vertical):
    """A received picture: its file card at once, the picture above it once decoded (off the UI
    thread, by kez_core.chat.images.preview_image: sniffed, size-limited). A file that does not
    decode stays a file card, with the reason; it never reaches the screen's thread as an error."""

    def __init__(self, entry: Any, now: datetime, path: str) -> None:
        super().__init__(
            Static(render.bubble(entry, now, picture=True), classes="card"),
            classes="bubble in picture",
        )
        self.picture = path
        self.entry, self.now = entry, now
        self.failed: str | None = None
        self.entry_state = entry.state

    def show_entry(self, entry: Any, now: datetime) -> None:
        """The card for `entry`: a one-line caption under the picture, the whole file card when
        the picture could not be shown."""
        self.entry, self.now, self.entry_state = entry, now, entry.state
        if self.failed:
            text = render.bubble(entry, now).append(
                f"\n(not shown: {visible(self.failed)})", style="dim"
            )
        else:
            text = render.bubble(entry, now, picture=True)
        self.query_one(".card", Static).update(text)

    def on_mount(self) -> None:
        self.run_worker(self._decode, thread=True, group="pictures", exit_on_error=False)

    def _decode(self) -> None:
        from kez_core.chat.images import preview_image

        try:
            with (
                _DECODING
            ):  # a thread of pictures decodes two at a time, not a window of photos at once
                if not self.is_attached:
                    return
                image = preview_image(self.picture or "")
            cls = image_widget_class()
        except KezError as exc:
            self.app.call_from_thread(self._not_shown, exc.message)
            return
        except Exception as exc:  # noqa: BLE001 - textual-image missing or failing: the card stays
            self.app.call_from_thread(self._not_shown, type(exc).__name__)
            return
        self.app.call_from_thread(self._show, cls, image)

    def _not_shown(self, why: str) -> None:
        self.failed = why
        if self.is_attached:
            self.show_entry(self.entry, self.now)

    def _show(self, cls: type[Widget], image: Any) -> None:
        if not self.is_attached:
            return
        widget = cls(image, classes="image")  # type: ignore[call-arg]
        widget.styles.width, widget.styles.height = picture_cells(image.size)
        self.mount(widget, before=0)


def picture_cells(size: tuple[int, int], box: tuple[int, int] = IMAGE_BOX) -> tuple[int, int]:
    """Columns and rows for a picture of `size` pixels within `box` cells, keeping its shape
    (a cell is about twice as tall as it is wide)."""
    try:
        from textual_image._terminal import get_cell_size

        cell_w, cell_h = get_cell_size()
    except Exception:  # noqa: BLE001
        cell_w, cell_h = 10, 20
    cell_w, cell_h = cell_w or 10, cell_h or 20
    width, height = max(1, size[0]), max(1, size[1])
    cols = min(box[0], max(1, -(-width // cell_w)))
    rows = max(1, round(cols * height * cell_w / (width * cell_h)))
    if rows > box[1]:
        rows = box[1]
        cols = max(1, min(box[0], round(rows * width * cell_h / (height * cell_w))))
    return cols, rows


class ListenMessage(Message):
    """One `kez_core.chat.listener.ListenEvent`, posted from the listening worker."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event


# ---------------------------------------------------------------- modal screens


class PromptScreen(ModalScreen[str | None]):
    """One line of input (a handle, a name, a search); escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(
        self,
        title: str,
        *,
        password: bool = False,
        check: Callable[[str], str | None] | None = None,
        value: str = "",
    ) -> None:
        super().__init__()
        self.title_text = title
        self.password = password
        self.check = check
        self.value = value  # the answer offered (selected: typing replaces it, enter takes it)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.title_text))
            yield Input(self.value, password=self.password, id="prompt-input")
            yield Label(Text(""), id="prompt-error")

    def on_mount(self) -> None:
        self.query_one("#prompt-input", Input).focus()

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        if self.check is not None:
            problem = self.check(event.value)
            if problem:
                self.query_one("#prompt-error", Label).update(Text(problem, style="red"))
                event.input.value = ""
                return
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class InfoScreen(ModalScreen[bool]):
    """A text to read (who a handle is, help, search results): enter accepts, escape closes."""

    BINDINGS = [Binding("escape", "close(False)", "close"), Binding("enter", "close(True)", "ok")]

    def __init__(self, text: Text, hint: str) -> None:
        super().__init__()
        self.text = text
        self.hint = hint

    def show(self, text: Text) -> None:
        """Replace the text (the claims' statuses arrive after the screen opens)."""
        self.text = text
        self.query_one("#info-text", Static).update(text)

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog info"):
            yield Static(self.text, id="info-text")
            yield Label(Text(self.hint, style="dim"))

    def action_close(self, accept: bool) -> None:
        self.dismiss(accept)


class FilePickScreen(ModalScreen[Path | None]):
    """Pick a file to send, from the keyboard: arrows move, enter opens a folder or picks a
    file, backspace goes to the folder above, escape cancels. Starts in `start`."""

    BINDINGS = [Binding("escape", "cancel", "cancel"), Binding("backspace", "up", "folder up")]

    def __init__(self, start: Path) -> None:
        super().__init__()
        self.start = start

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog picker"):
            yield Label(Text("Send which file? enter: pick  backspace: folder up  escape: cancel"))
            yield Label(Text(visible(str(self.start)), style="dim"), id="picker-folder")
            yield DirectoryTree(self.start, id="picker-tree")

    def on_mount(self) -> None:
        self.query_one("#picker-tree", DirectoryTree).focus()

    @on(DirectoryTree.FileSelected)
    def picked(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(Path(event.path))

    def action_up(self) -> None:
        tree = self.query_one("#picker-tree", DirectoryTree)
        here = Path(tree.path).resolve()
        if here.parent != here:
            tree.path = here.parent
            self.query_one("#picker-folder", Label).update(
                Text(visible(str(here.parent)), style="dim")
            )

    def action_cancel(self) -> None:
        self.dismiss(None)


class FileItem(ListItem):
    """A received file in the list to pick from; `file` is its stored file dict."""

    def __init__(self, file: dict[str, Any], line: Text) -> None:
        super().__init__(Label(line))
        self.file = file


class FileListScreen(ModalScreen[dict[str, Any] | None]):
    """The open conversation's received files, newest first: pick one (arrows, enter)."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, title: str, files: list[tuple[Any, dict[str, Any]]], now: datetime) -> None:
        super().__init__()
        self.title_text = title
        self.files = files
        self.now = now

    def compose(self) -> ComposeResult:
        items = []
        for entry, file in self.files:
            line = Text(visible(str(file.get("name") or "file")))
            line.append(
                f"  {file.get('size', '?')} bytes  {render.short_time(entry.created_at, self.now)}",
                style="dim",
            )
            items.append(FileItem(file, line))
        with Vertical(classes="dialog"):
            yield Label(Text(self.title_text))
            yield ListView(*items, id="file-list")
            yield Label(Text("enter: this one   escape: cancel", style="dim"))

    def on_mount(self) -> None:
        self.query_one("#file-list", ListView).focus()

    @on(ListView.Selected)
    def chosen(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, FileItem):
            self.dismiss(event.item.file)

    def action_cancel(self) -> None:
        self.dismiss(None)


KEY_HINTS = (
    ("f1", "help"),
    ("^n", "new"),
    ("^t", "send file"),
    ("^s", "save"),
    ("^r", "rename"),
    ("^b", "block"),
    ("^f", "search"),
    ("^q", "quit"),
)  # 80 columns


def key_hints() -> Text:
    """The bottom line: the main keys (all of them are in the help screen, f1). A plain line,
    not Textual's Footer: the Footer rebuilds a widget per binding on every focus change, the
    largest single item in the first-paint profile (benchmarks/README.md)."""
    text = Text(" ")
    for key, what in KEY_HINTS:
        text.append(key, style="bold")
        text.append(f" {what}  ")
    text.rstrip()
    return text


def help_text() -> Text:
    text = Text("kez chat: keys\n\n", style="bold")
    for key, what in HELP:
        text.append(f"{key:>14}  ", style="bold")
        text.append(what + "\n")
    return text


def peer_details(
    mine: str, peer: Any, *, first: bool = True, report: Any = None, failed: str = ""
) -> Text:
    """Who a handle names, before the first message: identity, devices, claims with their
    statuses (`report`: a kez_core.verifier IdentityReport; None while it is being made),
    and the safety number."""
    from kez_core.chat import safety_number

    chain = peer.chain
    heading = "Before you write, check who this is" if first else "Who this is"
    text = Text(heading + "\n\n", style="bold")
    rows = [
        ("handle", peer.handle or "-"),
        ("identity", peer.identity),
        ("primary key", chain.current_primary),
    ]
    for label, value in rows:
        text.append(f"{label:>12}  ", style="dim")
        text.append(visible(str(value)) + "\n")
    devices = sorted(chain.devices.items())
    text.append(f"{'devices':>12}  ", style="dim")
    text.append(
        ", ".join(visible(f"{name} {key}") for key, name in devices)
        or "none besides the primary key"
    )
    text.append("\n")
    claims = chain.active_claims()
    checks = {p.check.claim_id: p.check for p in report.proofs} if report is not None else {}
    text.append(f"{'claims':>12}  ", style="dim")
    if not claims:
        text.append("none\n")
    for i, claim in enumerate(claims):
        text.append(("" if i == 0 else " " * 14) + visible(claim.subject) + "  ")
        check = checks.get(claim.claim_id)
        if check is not None:
            text.append(check.status.value, style="green" if check.ok else "red")
            text.append(visible(f" ({check.reason})") + "\n", style="dim")
        elif failed:
            text.append(visible(f"not checked: {failed}") + "\n", style="yellow")
        else:
            text.append("checking…\n", style="dim")
    for line in peer.notes:
        text.append(visible(line) + "\n", style="yellow")
    text.append("\nSafety number (compare it in person or on a call):\n", style="bold")
    digits = safety_number(mine, peer.identity).split()
    text.append("  " + " ".join(digits[:6]) + "\n  " + " ".join(digits[6:]) + "\n")
    return text


# ---------------------------------------------------------------- the app


class ChatApp(App[None]):
    """`kez chat`: see the module docstring."""

    TITLE = "kez chat"
    CSS = """
    #sidebar { width: 26; border-right: solid $primary; }
    #sidebar Label.heading { text-style: bold; padding: 0 1; }
    #chats { height: 2fr; }
    #requests { height: 1fr; }
    #thread { width: 1fr; }
    #peer-title { height: 1; padding: 0 1; text-style: bold; background: $boost; }
    #messages { height: 1fr; }
    #earlier, #later { display: none; padding: 0 1; }
    .bubble { margin: 0 1 1 1; padding: 0 1; max-width: 80%; }
    .bubble.out { background: $primary 30%; margin-left: 8; }
    .bubble.in { background: $panel; margin-right: 8; }
    #compose { height: 4; }
    #status { height: 1; color: $text-muted; padding: 0 1; }
    #keys { height: 1; background: $panel; color: $text; }
    .dialog { width: 72; max-width: 100%; height: auto; max-height: 100%; border: thick $primary; padding: 1 2; background: $surface; }
    PromptScreen, InfoScreen, FilePickScreen, FileListScreen { align: center middle; }
    .picker { height: 80%; }
    #picker-tree { height: 1fr; }
    #file-list { height: auto; max-height: 16; }
    .bubble.picture { height: auto; }
    .bubble.picture .image { margin-bottom: 1; }
    """
    BINDINGS = [
        Binding("ctrl+n", "new_conversation", "new"),
        Binding("ctrl+r", "rename", "rename"),
        Binding("ctrl+b", "block", "block"),
        Binding("ctrl+f", "search", "search"),
        Binding("f2", "profile", "who", show=False),
        Binding("ctrl+t", "pick_file", "send file", show=False),
        Binding("ctrl+s", "save_file", "save file", show=False),
        Binding("ctrl+o", "open_file", "open file", show=False),
        Binding("escape", "focus_list", "list", show=False),
        Binding("f1", "help", "help", priority=True),
        Binding("question_mark", "help", "help", show=False),
        Binding("ctrl+q", "quit", "quit", priority=True),
    ]

    def __init__(
        self,
        session: ChatSession,
        *,
        clock: Callable[[], datetime] = utc_now,
        desktop_notify: bool = False,
    ) -> None:
        super().__init__()
        self.session = session
        self.clock = clock
        self.desktop_notify = desktop_notify  # `--notify`: notify-send when on PATH (else the bell)
        self.receiving: dict[str, str] = {}  # transfer -> "name N/M", files still arriving
        self.current: str | None = None  # the open conversation's identity id
        self.peers: dict[str, Any] = {}  # identity -> resolved Peer
        self.bubbles: dict[str, Bubble | ImageBubble] = {}
        self.shown_from: int | None = (
            None  # index in the open history of its first bubble (None: the latest window)
        )
        self.shown_to: int | None = (
            None  # index after its last bubble; None: the window reaches the latest message
        )
        self.links: dict[str, str] = {}
        self.unlocked = False
        self.listen_task: Any = None
        self._echoes = 0
        self._gc_held = False  # _tame_gc holds the collector for this app
        self._last_input = 0.0

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="sidebar"):
                yield Label("Chats", classes="heading")
                yield ListView(id="chats")
                yield Label("Requests", classes="heading")
                yield ListView(id="requests")
            with Vertical(id="thread"):
                yield Static(Text("no conversation open: ctrl+n to start one"), id="peer-title")
                yield Thread(
                    Static(Text(""), id="earlier"), Static(Text(""), id="later"), id="messages"
                )
                yield ComposeArea(id="compose")
                yield Static(Text("locked"), id="status")
        yield Static(key_hints(), id="keys")

    def on_mount(self) -> None:
        if self.session.needs_passphrase:
            self.push_screen(
                PromptScreen(
                    f"Passphrase for identity {visible(self.session.record.name)}",
                    password=True,
                    check=self._try_unlock,
                ),
                callback=self._after_prompt_unlock,
            )
        else:
            problem = self._try_unlock(None)
            if problem:
                self.notify(problem, severity="error", markup=False, timeout=30)
            else:
                self._start()

    def _try_unlock(self, passphrase: str | None) -> str | None:
        try:
            self.session.unlock(passphrase)
        except (KezError, ValueError) as exc:
            return _error(exc)
        return None

    def _after_prompt_unlock(self, value: str | None) -> None:
        if value is None:
            self.exit()
            return
        self._start()

    def _tame_gc(self) -> None:
        """Keep CPython's full garbage collections out of the frames a person waits for.

        A full collection walks every object the app holds (about 100,000 with a thread
        open: each rendered line keeps seven small caches), 40-550 ms on this 2-core VM,
        and it came every few page-ups (benchmarks/chat_app.py: every frame over 100 ms
        was one). So: what startup made (imports, Textual, the first screen) is frozen
        out of the collector's reach (`gc.freeze`), automatic full collections are off,
        and `_idle_collect` runs one when no key or click came for `GC_IDLE` seconds and
        the collector would have run one by now. Young objects are collected as usual.
        `on_unmount` puts the collector back as it was once the last app holding it ends
        (tests run many apps in one process, two at once)."""
        import gc

        if self._gc_held:
            return
        self._gc_held = True
        if not _GC_HOLDERS:
            _GC_SAVED[:] = [gc.get_threshold()]
            gc.freeze()
            young, middle, _ = _GC_SAVED[0]
            gc.set_threshold(young, middle, 1_000_000)
        _GC_HOLDERS.append(self)
        self.set_interval(GC_IDLE, self._idle_collect, name="gc")

    def _idle_collect(self) -> None:
        import gc
        import time

        if time.monotonic() - self._last_input >= GC_IDLE and gc.get_count()[2] >= 10:
            gc.collect()

    async def on_event(self, event: Any) -> None:
        if isinstance(
            event, (events.Key, events.MouseDown, events.MouseScrollDown, events.MouseScrollUp)
        ):
            import time

            self._last_input = time.monotonic()
        await super().on_event(event)

    def _start(self) -> None:
        self.call_after_refresh(self._tame_gc)
        self.unlocked = True
        self.links = {r.name: "connecting" for r in self.session.routes}
        self._show_status()
        self.refresh_sidebar()
        self.query_one("#compose", ComposeArea).focus()
        if self.session.routes:
            self.listen_task = self.run_worker(
                self._listen(), name="listen", group="listen", exit_on_error=False
            )

    async def _listen(self) -> None:
        from kez_core.chat.receiving import share_new_inbox_key
        from kez_core.sigserver_client import configured_servers

        try:  # as every receiving command does: a new key on the last day, pushed to the servers
            renewal = await share_new_inbox_key(self.service, configured_servers(), timeout=10.0)
        except KezError as exc:
            self.notify(_error(exc), severity="warning", markup=False)
        else:
            if renewal is not None:
                told = (
                    "; ".join(f"{p.server}: {p.message}" for p in renewal.pushes)
                    if renewal.servers
                    else "share your chain (`kez sigchain publish`)"
                )
                self.notify(
                    visible(f"published a new inbox key {renewal.key}: {told}"),
                    markup=False,
                    timeout=15,
                )
        from kez_core.chat.listener import Listener

        events = Listener(self.session.service, self.session.routes).events()
        try:
            async for event in events:
                self.post_message(ListenMessage(event))
        except KezError as exc:
            self.notify(_error(exc), severity="error", markup=False, timeout=30)
        finally:
            await events.aclose()

    @property
    def service(self) -> Any:
        return self.session.service

    # ------------------------------------------------------------ sidebar

    def refresh_sidebar(self) -> None:
        rows = self.service.conversations()
        chats = self.query_one("#chats", ListView)
        requests = self.query_one("#requests", ListView)
        known = {r["peer"] for r in rows}
        chats.clear()
        requests.clear()
        if self.current is not None and self.current not in known:
            peer = self.peers.get(self.current)
            row = {
                "peer": self.current,
                "contact": getattr(peer, "contact", None),
                "handle": getattr(peer, "handle", None),
            }
            chats.append(PeerItem(self.current, render.conversation_line(row)))
        for row in rows:
            (requests if row["stranger"] else chats).append(
                PeerItem(row["peer"], render.conversation_line(row))
            )

    @on(ListView.Selected)
    def selected(self, event: ListView.Selected) -> None:
        if isinstance(event.item, PeerItem):
            self.open_peer(event.item.peer)
            self.query_one("#compose", ComposeArea).focus()

    # ------------------------------------------------------------ thread

    def open_peer(self, identity: str) -> None:
        if identity != self.current:
            self.current = identity
            self._reset_window()
        self.refresh_thread()
        self.refresh_sidebar()

    def _title(self) -> Text:
        contact = self.service.store.contact_for(self.current) if self.current else None
        peer = self.peers.get(self.current or "")
        name = (
            (contact.name if contact else None)
            or getattr(peer, "handle", None)
            or self.current
            or ""
        )
        text = Text(visible(str(name)))
        if contact is None:
            text.append("  not a contact", style="yellow")
        elif contact.blocked:
            text.append("  blocked", style="red")
        return text

    def _reset_window(self) -> None:
        """Forget the bubbles shown: the next refresh_thread mounts the latest window."""
        self.bubbles.clear()
        self.shown_from = self.shown_to = None
        self.query_one("#messages", Thread).query(".bubble").remove()

    def refresh_thread(self) -> None:
        if self.current is None:
            return
        self.query_one("#peer-title", Static).update(self._title())
        store = self.service.store
        if self.shown_from is None:
            self.shown_from = max(0, store.history_length(self.current) - THREAD_WINDOW)
        from kez_core.chat.files import annotate

        limit = (
            None if self.shown_to is None else self.shown_to - self.shown_from
        )  # scrolled back: update only
        entries = annotate(
            self.service,
            store.history(self.current, mark_read=True, start=self.shown_from, limit=limit),
        )
        box = self.query_one("#messages", Thread)
        self._show_earlier()
        now = self.clock()
        new = []
        echoes = [k for k in self.bubbles if k.startswith("echo-")]
        for entry in entries:
            picture = self._picture(entry)
            text = render.bubble(entry, now, picture=picture is not None)
            if entry.key not in self.bubbles and entry.direction == "out" and echoes:
                self.bubbles[entry.key] = self.bubbles.pop(
                    echoes.pop(0)
                )  # its local echo, stored meanwhile
            shown = self.bubbles.get(entry.key)
            if shown is None:
                shown = self.bubbles[entry.key] = self._bubble(entry, text, picture)
                new.append(shown)
            elif shown.picture != picture:
                # a file that finished arriving as a picture: its card becomes an ImageBubble
                self.bubbles[entry.key] = replacement = self._bubble(entry, text, picture)
                box.mount(replacement, after=shown)
                shown.remove()
            elif isinstance(shown, ImageBubble):
                shown.show_entry(entry, now)
            else:
                shown.update(text)
                shown.entry_state = entry.state
        if new:
            box.mount_all(new, before=self.query_one("#later", Static))
            box.scroll_end(animate=False)

    def _bubble(self, entry: Any, text: Text, picture: str | None) -> Bubble | ImageBubble:
        """A message's widget: a received picture (`_picture`: by its bytes, not its name) is an ImageBubble."""
        if picture is not None:
            shown: Bubble | ImageBubble = ImageBubble(entry, self.clock(), picture)
        else:
            shown = Bubble(text, entry.direction == "out")
        shown.entry_state = entry.state
        return shown

    @staticmethod
    def _picture(entry: Any) -> str | None:
        """The path of a received file that is a picture (its first bytes say so), else None."""
        if entry.body.get("kind") != "file" or entry.direction != "in":
            return None
        from kez_core.chat.images import sniff_file
        from kez_core.chat.received_files import received_file

        file = received_file(entry) if entry.body.get("kind") == "file" else None
        if file is not None and sniff_file(str(file["path"])) is not None:
            return str(file["path"])
        return None

    def _show_earlier(self) -> None:
        label = self.query_one("#earlier", Static)
        label.display = bool(self.shown_from)
        if self.shown_from:
            label.update(
                Text(
                    f"↑ {self.shown_from:,} earlier messages: page up at the top shows more",
                    style="dim",
                )
            )
        later = self.query_one("#later", Static)
        after = 0
        if self.shown_to is not None and self.current is not None:
            after = self.service.store.history_length(self.current) - self.shown_to
        later.display = after > 0
        if after > 0:
            later.update(
                Text(f"↓ {after:,} later messages: page down at the bottom shows more", style="dim")
            )

    def _in_view(self, box: Thread) -> Widget | None:
        """The first bubble in sight: the place to keep when the window slides."""
        top = box.scroll_offset.y
        for bubble in box.query(".bubble"):
            if bubble.virtual_region.bottom > top:
                return bubble
        return None

    def _unmount(self, bubbles: list[Widget]) -> None:
        gone = set(map(id, bubbles))
        for key in [k for k, b in self.bubbles.items() if id(b) in gone]:
            del self.bubbles[key]
        for bubble in bubbles:
            bubble.remove()

    def load_earlier(self, page: int = 0) -> bool:
        """Mount the window of messages before the first shown one (a page-up reaching the
        thread's top), then move up `page` lines; False when the whole conversation is shown."""
        if self.current is None or not self.shown_from:
            return False
        from kez_core.chat.files import annotate

        start = max(0, self.shown_from - THREAD_WINDOW)
        entries = annotate(
            self.service,
            self.service.store.history(
                self.current, mark_read=False, start=start, limit=self.shown_from - start
            ),
        )
        now = self.clock()
        new = []
        for entry in entries:
            picture = self._picture(entry)
            bubble = self.bubbles[entry.key] = self._bubble(
                entry, render.bubble(entry, now, picture=bool(picture)), picture
            )
            new.append(bubble)
        box = self.query_one("#messages", Thread)
        shown = list(box.query(".bubble"))
        first = shown[0] if shown else None
        offset = box.scroll_y - first.virtual_region.y if first is not None else 0
        box.mount_all(new, after=self.query_one("#earlier", Static))
        self.shown_from = start
        excess = len(shown) + len(new) - THREAD_MOUNTED
        if excess > 0:  # the far bottom goes: the window stays THREAD_MOUNTED bubbles
            self._unmount(shown[-excess:])
            self.shown_to = start + len(new) + len(shown) - excess
        self._show_earlier()
        if first is not None:  # keep the place, then a page up into what came
            box.keep_place(first, offset, -page)
        return True

    def load_later(self, page: int = 0) -> bool:
        """Mount the window of messages after the last shown one (a page-down reaching the
        thread's bottom, once page-ups have unmounted the latest), then move down `page`
        lines; False when the latest is shown."""
        if self.current is None or self.shown_to is None or self.shown_from is None:
            return False
        from kez_core.chat.files import annotate

        total = self.service.store.history_length(self.current)
        end = min(total, self.shown_to + THREAD_WINDOW)
        entries = annotate(
            self.service,
            self.service.store.history(
                self.current, mark_read=False, start=self.shown_to, limit=end - self.shown_to
            ),
        )
        now = self.clock()
        new = [
            self._bubble(entry, render.bubble(entry, now, picture=bool(p)), p)
            for entry in entries
            for p in [self._picture(entry)]
        ]
        for entry, bubble in zip(entries, new, strict=True):
            self.bubbles[entry.key] = bubble
        box = self.query_one("#messages", Thread)
        anchor = self._in_view(box)
        offset = box.scroll_y - anchor.virtual_region.y if anchor is not None else 0
        shown = list(box.query(".bubble"))
        box.mount_all(new, before=self.query_one("#later", Static))
        excess = len(shown) + len(new) - THREAD_MOUNTED
        if excess > 0:  # the far top goes
            self._unmount(shown[:excess])
            self.shown_from += excess
        self.shown_to = None if end >= total else end
        self._show_earlier()
        if (
            anchor is not None and anchor.is_attached
        ):  # keep the place, then a page down into what came
            box.keep_place(anchor, offset, page)
        return True

    def echo(self, text: str, state: str = "sending") -> str:
        """Local echo: the message shows at once, as `sending`; its placeholder key."""
        if self.shown_to is not None:  # scrolled back: the latest window comes back first
            self._reset_window()
            self.refresh_thread()
        self._echoes += 1
        key = f"echo-{self._echoes}"
        bubble = Bubble(self._echo_text(text, state), True)
        bubble.entry_state = "sending"
        bubble.echo_text = text
        self.bubbles[key] = bubble
        box = self.query_one("#messages", Thread)
        box.mount(bubble, before=self.query_one("#later", Static))
        box.scroll_end(animate=False)
        return key

    @staticmethod
    def _echo_text(text: str, state: str) -> Text:
        return Text(visible(text, multiline=True) + "\n").append(f"… {state}", style="dim")

    def _progress(self, pending: str) -> Callable[[int, int], None]:
        """A file's sending progress, shown on its echo until the stored entry takes over."""

        def update(done: int, total: int) -> None:
            bubble = self.bubbles.get(pending)
            if bubble is not None:
                bubble.update(self._echo_text(bubble.echo_text, f"sending {done}/{total}"))

        return update

    def _failed(self, pending: str, exc: BaseException) -> None:
        """A send that failed: its echo goes (a message already stored shows from the history)."""
        bubble = self.bubbles.pop(pending, None)
        if bubble is not None:
            bubble.remove()
        self.notify(_error(exc), severity="error", markup=False)
        self.refresh_thread()

    # ------------------------------------------------------------ sending

    @on(ComposeArea.Submitted)
    def compose_submitted(self, event: ComposeArea.Submitted) -> None:
        if not self.unlocked:
            return
        if self.current is None:
            self.notify(
                "open a conversation first (ctrl+n: new by handle)",
                severity="warning",
                markup=False,
            )
            return
        text = event.text
        if text.startswith("/file "):
            path = text[len("/file ") :].strip()
            self.send_file(self.current, path, self.echo(f"file {path}"))
            return
        self.send_text(self.current, text, self.echo(text))

    async def _peer(self, identity: str) -> Any:
        peer = self.peers.get(identity)
        if peer is None:
            peer = self.peers[identity] = await self.service.resolve_peer(identity)
        return peer

    @work(group="send")
    async def send_text(self, identity: str, text: str, pending: str) -> None:
        try:
            peer = await self._peer(identity)
            result = await self.service.send_text(peer, text, self.session.routes)
        except KezError as exc:
            self._failed(pending, exc)
            return
        self._sent(result, pending)

    def _sent(self, result: Any, pending: str | None = None) -> None:
        if pending is not None and pending in self.bubbles:
            self.bubbles[result.key] = self.bubbles.pop(pending)
        if not any(d.sent for d in result.deliveries):
            failed = next((d.error for d in result.deliveries if d.error), None) or {}
            self.notify(
                visible(f"not sent yet: {failed.get('message', 'no transport')}"),
                severity="warning",
                markup=False,
            )
        if self.current == result.peer:
            self.refresh_thread()
        self.refresh_sidebar()

    @work(group="send")
    async def send_file(self, identity: str, path: str, pending: str) -> None:
        try:
            peer = await self._peer(identity)
            result = await self.service.send_file(
                peer, path, self.session.routes, self._progress(pending)
            )
        except (KezError, OSError) as exc:
            self._failed(pending, exc)
            return
        self._sent(result, pending)

    # ------------------------------------------------------------ receiving

    @on(ListenMessage)
    def listen_event(self, message: ListenMessage) -> None:
        event = message.event
        if event.kind in ("up", "down"):
            if event.kind == "up":
                self.links[event.route] = "live"
            else:
                detail = (event.error or {}).get("message", "")
                self.links[event.route] = (
                    f"lost ({detail}), retrying in {event.retry_in or 0:.0f} s"
                )
            self._show_status()
            return
        if event.kind == "note":
            self.notify(visible(event.text), markup=False)
            return
        if event.kind == "refused" or event.received is None:
            return
        received = event.received
        if received.kind == "ack":
            self.refresh_thread()
            return
        if received.kind not in ("message", "file_chunk"):
            return
        if received.file is not None:
            self._file_progress(received.file, received.message.body)
        sender = received.message.sender_identity
        if sender == self.current:
            self.refresh_thread()
        elif received.kind == "message":
            self.alert(sender, received)
        self.refresh_sidebar()

    def _file_progress(self, file: dict[str, Any], body: dict[str, Any]) -> None:
        """ "Receiving N/M…" in the status line while a file's chunks arrive (they come before
        the message naming the file, so a chunk's transfer id is the key until then)."""
        transfer = str(file.get("transfer") or body.get("transfer") or "")
        if not transfer:
            return
        if file.get("state") == "receiving":
            self.receiving[transfer] = (
                f"{visible(str(file.get('name') or 'file'))} {file.get('received', 0)}/{file.get('count', '?')}"
            )
        else:
            self.receiving.pop(transfer, None)
        self._show_status()

    def alert(self, sender: str, received: Any) -> None:
        """A message in a conversation that is not open: a desktop notification with `--notify`
        (notify-send, run off the UI thread), else the terminal bell."""
        from ..notify import notify, notify_command

        body = received.message.body
        if received.file is not None:
            what = f"file {received.file.get('name', '')}"
        elif body.get("kind") == "text":
            what = str(body.get("text", ""))
        else:
            what = str(body.get("kind", "message"))
        contact = self.service.store.contact_for(sender)
        peer = self.peers.get(sender)
        title = "kez: " + render.peer_label(
            {
                "peer": sender,
                "contact": contact.name if contact else None,
                "handle": getattr(peer, "handle", None),
            }
        )
        if self.desktop_notify and notify_command(title, what) is not None:
            self.run_worker(
                lambda: notify(title, what), thread=True, group="notify", exit_on_error=False
            )
        else:
            self.bell()

    def _show_status(self) -> None:
        text = Text()
        for name, state in self.links.items():
            text.append(f"{visible(name)}: ", style="bold")
            text.append(visible(state) + "  ", style="green" if state == "live" else "yellow")
        if not self.links:
            text.append("no transport: give --via (kez chat --help)", style="yellow")
        for shown in self.receiving.values():
            text.append(f"Receiving {shown}…  ", style="cyan")
        self.query_one("#status", Static).update(text)

    # ------------------------------------------------------------ actions

    def action_help(self) -> None:
        if not isinstance(self.screen, InfoScreen):
            self.push_screen(InfoScreen(help_text(), "escape: close"))

    def action_new_conversation(self) -> None:
        if self.unlocked:
            self.push_screen(
                PromptScreen("Write to (a handle, e.g. bob@kez.example, or a contact)"),
                callback=self._new_conversation,
            )

    def _new_conversation(self, value: str | None) -> None:
        if value and value.strip():
            self.look_up(value.strip())

    @work(group="lookup", exclusive=True)
    async def look_up(self, text: str) -> None:
        try:
            peer = await self.service.resolve_peer(text)
        except KezError as exc:
            self.notify(_error(exc), severity="error", markup=False)
            return
        self.peers[peer.identity] = peer
        mine = self.service.identity

        def chosen(accept: bool | None) -> None:
            if accept:
                self.open_peer(peer.identity)
                self.query_one("#compose", ComposeArea).focus()

        screen = InfoScreen(
            peer_details(mine, peer), "enter: start the conversation   escape: cancel"
        )
        self.push_screen(screen, callback=chosen)
        await self.check_claims(screen, mine, peer, first=True)

    async def check_claims(self, screen: InfoScreen, mine: str, peer: Any, *, first: bool) -> None:
        """Verify the peer's claims (as `kez verify` does) and show their statuses on `screen`."""
        if not peer.chain.active_claims():
            return
        from kez_core.verifier import FetchPolicy, verify_identity

        report, failed = None, ""
        try:
            report = await verify_identity(
                peer.chain,
                registry=self.service.keystore.registry,
                policy=FetchPolicy(timeout=self.session.timeout, retries=0),
            )
        except KezError as exc:
            failed = exc.message
        if screen.is_attached:
            screen.show(peer_details(mine, peer, first=first, report=report, failed=failed))

    def action_rename(self) -> None:
        if self.current is not None:
            self.push_screen(PromptScreen("Contact name"), callback=self._rename)

    def _rename(self, value: str | None) -> None:
        if not value or self.current is None:
            return
        self.rename(self.current, value.strip())

    @work(group="contacts")
    async def rename(self, identity: str, name: str) -> None:
        try:
            contact = self.service.store.contact_for(identity)
            if contact is not None:
                self.service.rename_contact(contact.name, name)
            else:
                await self.service.add_contact(name, identity)
        except KezError as exc:
            self.notify(_error(exc), severity="error", markup=False)
            return
        self.refresh_thread()
        self.refresh_sidebar()

    def action_block(self) -> None:
        if self.current is not None:
            self.toggle_block(self.current)

    @work(group="contacts")
    async def toggle_block(self, identity: str) -> None:
        contact = self.service.store.contact_for(identity)
        try:
            if contact is not None and contact.blocked:
                await self.service.block(contact.name, False)
                done = "unblocked"
            else:
                await self.service.block(contact.name if contact else identity, True)
                done = "blocked: their messages are dropped"
        except KezError as exc:
            self.notify(_error(exc), severity="error", markup=False)
            return
        self.notify(done, markup=False)
        self.refresh_thread()
        self.refresh_sidebar()

    def action_search(self) -> None:
        if self.current is not None:
            self.push_screen(PromptScreen("Search this conversation for"), callback=self._search)

    def _search(self, value: str | None) -> None:
        if not value or self.current is None:
            return
        hits = self.service.search(self.current, value)
        text = Text(f"{len(hits)} message(s) with {visible(value)!r}\n\n", style="bold")
        now = self.clock()
        for entry in hits:
            text.append_text(render.bubble(entry, now))
            text.append("\n\n")
        self.push_screen(InfoScreen(text, "escape: close"))

    def _pick_received(self, verb: str, then: Callable[[dict[str, Any]], None]) -> None:
        """Which received file: the only one, or the one the person picks from the list."""
        from kez_core.chat.received_files import received_files

        if self.current is None:
            return
        files = received_files(self.service.store.history(self.current, mark_read=False))
        if not files:
            self.notify(
                "no file received in this conversation yet", severity="warning", markup=False
            )
        elif len(files) == 1:
            then(files[0][1])
        else:
            self.push_screen(
                FileListScreen(f"{verb} which file? (newest first)", files, self.clock()),
                callback=lambda file: then(file) if file else None,
            )

    def action_save_file(self) -> None:
        self._pick_received("Save", self._ask_where)

    def _ask_where(self, file: dict[str, Any]) -> None:
        from kez_core.chat.received_files import default_destination

        self.push_screen(
            PromptScreen(
                f"Save {visible(str(file.get('name', 'file')))} to (a path or a folder)",
                value=str(default_destination(file)),
            ),
            callback=lambda value: self._save_file(file, value),
        )

    def _save_file(self, file: dict[str, Any], value: str | None) -> None:
        from kez_core.chat.received_files import copy_received

        if not value or not value.strip():
            return
        try:
            target = copy_received(file, value.strip())
        except KezError as exc:
            self.notify(_error(exc), severity="error", markup=False)
            return
        self.notify(visible(f"saved a copy to {target}"), markup=False)

    def action_open_file(self) -> None:
        self._pick_received("Open", self._open_file)

    def _open_file(self, file: dict[str, Any]) -> None:
        import shutil
        import subprocess

        path = str(file["path"])
        opener = shutil.which("xdg-open")
        if opener is None:
            self.notify(
                visible(f"no xdg-open here: the file is at {path}"), markup=False, timeout=15
            )
            return
        try:  # an argument list, no shell; detached so the viewer outlives nothing of ours
            subprocess.Popen(
                [opener, path],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            self.notify(_error(exc), severity="error", markup=False)
            return
        self.notify(visible(f"opening {path}"), markup=False)

    def action_pick_file(self) -> None:
        """ctrl+t: pick a file to send, starting in the current folder."""
        if self.current is None:
            self.notify(
                "open a conversation first (ctrl+n: new by handle)",
                severity="warning",
                markup=False,
            )
            return
        self.push_screen(FilePickScreen(Path.cwd()), callback=self._picked)

    def _picked(self, path: Path | None) -> None:
        if path is None or self.current is None:
            return
        self.send_file(self.current, str(path), self.echo(f"file {path}"))
        self.query_one("#compose", ComposeArea).focus()

    def action_focus_list(self) -> None:
        self.query_one("#chats", ListView).focus()

    def action_profile(self) -> None:
        if self.current is not None:
            self.show_profile(self.current)

    @work(group="lookup", exclusive=True)
    async def show_profile(self, identity: str) -> None:
        try:
            peer = await self._peer(identity)
        except KezError as exc:
            self.notify(_error(exc), severity="error", markup=False)
            return
        mine = self.service.identity
        screen = InfoScreen(peer_details(mine, peer, first=False), "escape: close")
        self.push_screen(screen)
        await self.check_claims(screen, mine, peer, first=False)

    async def action_quit(self) -> None:
        self.workers.cancel_all()
        self.exit()

    def on_unmount(self) -> None:
        if self._gc_held:
            import gc

            self._gc_held = False
            _GC_HOLDERS.remove(self)
            if not _GC_HOLDERS and _GC_SAVED:
                gc.unfreeze()
                gc.set_threshold(*_GC_SAVED.pop())
        self.session.close()
