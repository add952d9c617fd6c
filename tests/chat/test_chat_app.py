"""`kez chat` driven as a person would, with Textual's Pilot: alice and bob, two apps in one
test, over a real nats-server and a real kez-server (handles).

Alice starts a conversation by Bob's handle (and is shown who that is and the
safety number first), writes, sees her message delivered; Bob sees her in his
requests, reads it, and blocks her; what she sends next never reaches him.
"""

from __future__ import annotations

import asyncio
import os
import unicodedata
import subprocess
import sys
from pathlib import Path

import pytest
from kez_server.testing import running_server
from kez_transport_nats.testing import running_nats_server
from message_cli_helpers import kez_json
from textual import events
from textual.keys import KEY_NAME_REPLACEMENTS
from textual.widgets import DirectoryTree

from kez_cli.chat_app import render
from kez_cli.chat_app.app import (
    Bubble,
    ChatApp,
    ComposeArea,
    FilePickScreen,
    ImageBubble,
    InfoScreen,
    PeerItem,
    PromptScreen,
)
from kez_cli.chat_app.session import ChatSession
from kez_cli.commands.message import _routes
from kez_core.sigserver_client import ServerDirectory
from kez_core.chat import safety_number
from kez_core.keystore import Keystore
from kez_core.registry import default_registry


@pytest.fixture
def handle_server():
    with running_server() as server:
        yield server


def session(person, nats_url, handle_server) -> ChatSession:
    store = Keystore(person["home"], registry=default_registry())
    routes = _routes(["--nats-url", nats_url], store, ["nats"], 10.0)
    return ChatSession(
        store, store.get(), routes, directory=ServerDirectory(handle_server.url, 10.0), timeout=3.0
    )


async def until(pilot, check, what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def key_name(char: str) -> str:
    """The name Textual gives the key that types `char` (what `pilot.press(char)` sends)."""
    if char.isalnum():
        return char
    name = unicodedata.name(char).lower().replace("-", "_").replace(" ", "_")
    return KEY_NAME_REPLACEMENTS.get(name, name)


async def type_text(pilot, text: str) -> None:
    """Type `text` as one burst of key events, the way a terminal delivers fast typing, then
    wait until the app has handled them all. (`pilot.press` waits for the app to go idle after
    each key, twice: some 70 ms a key, and these tests type long paths.)"""
    for char in text:
        pilot.app.post_message(events.Key(key_name(char), char))
    await pilot.pause()


def bubble_texts(app: ChatApp) -> list[str]:
    return [str(b.render()) for b in app.query(Bubble)]


def states(app: ChatApp) -> list[str]:
    return [b.entry_state for b in app.query(Bubble)]


def test_alice_writes_to_a_handle_bob_reads_and_blocks(
    capsys, three, nats_url, handle_server, tmp_path
):
    alice, bob = three["alice"], three["bob"]
    kez_json(
        capsys, bob["home"], "sigchain", "add", "dns:bob.invalid"
    )  # a claim whose check cannot pass
    kez_json(capsys, bob["home"], "handle", "register", "bobby", "--server", handle_server.url)
    # Alice does not know Bob's chain beforehand: the handle brings it
    os.remove(alice["home"] / "chains" / (bob["id"].replace(":", "-") + ".jsonl"))
    a_app = ChatApp(session(alice, nats_url, handle_server))
    b_app = ChatApp(session(bob, nats_url, handle_server))
    rings: list[int] = []
    b_app.bell = lambda: rings.append(1)

    async def run() -> None:
        async with a_app.run_test(size=(80, 24)) as pa, b_app.run_test(size=(80, 24)) as pb:
            await until(pa, lambda: a_app.links.get("nats") == "live", "alice's feed")
            await until(pb, lambda: b_app.links.get("nats") == "live", "bob's feed")

            # 1. a conversation by handle: who it is, and the safety number, before the first word
            await pa.press("ctrl+n")
            await type_text(pa, "bobby@example.org")
            await pa.press("enter")
            await until(pa, lambda: isinstance(a_app.screen, InfoScreen), "the peer screen")
            shown = str(a_app.screen.text)
            assert bob["id"] in shown and "bobby@example.org" in shown
            assert safety_number(alice["id"], bob["id"]).split()[0] in shown
            assert "dns:bob.invalid" in shown
            # its claims get their statuses as `kez verify` gives them
            await until(
                pa, lambda: "checking" not in str(a_app.screen.text), "the claim checks", timeout=40
            )
            assert any(s in str(a_app.screen.text) for s in ("unreachable", "not_found", "invalid"))
            await pa.press("enter")
            assert a_app.current == bob["id"]
            assert isinstance(a_app.focused, ComposeArea)

            # 2. send: the bubble shows at once, then sent, then delivered (Bob's ack)
            await type_text(pa, "hi bob [b]not bold[/b]")
            await pa.press("enter")
            await pa.pause()
            assert any("hi bob [b]not bold[/b]" in t for t in bubble_texts(a_app))
            await until(pa, lambda: states(a_app) == ["delivered"], "delivered")
            assert "via nats" in bubble_texts(a_app)[0]

            # Bob: a stranger's message is a request; opening it shows the text as written
            requests = b_app.query_one("#requests")
            await until(pb, lambda: len(requests.query(PeerItem)) == 1, "bob's request")
            assert "(1)" in str(requests.query_one(PeerItem).query_one("Label").render())
            assert rings == [1]  # a message in a conversation that is not open rings
            b_app.open_peer(alice["id"])
            await pb.pause()
            assert any(
                "hi bob [b]not bold[/b]" in t and "via nats" in t for t in bubble_texts(b_app)
            )
            assert b_app.service.conversations()[0]["unread"] == 0

            # 5. Bob blocks Alice: her next message is dropped
            await pb.press("escape")
            await pb.press("ctrl+b")
            await until(
                pb,
                lambda: (
                    (c := b_app.service.store.contact_for(alice["id"])) is not None and c.blocked
                ),
                "the block",
            )
            await type_text(pa, "still there?")
            await pa.press("enter")
            await until(pa, lambda: states(a_app)[-1] == "sent", "sent")
            await asyncio.sleep(1.0)
            _, entries = await b_app.service.history(alice["id"], mark_read=False)
            assert [e.body["text"] for e in entries] == ["hi bob [b]not bold[/b]"]

            # f2: who the open conversation is
            await pa.press("f2")
            await until(pa, lambda: isinstance(a_app.screen, InfoScreen), "the profile")
            assert "Who this is" in str(a_app.screen.text)
            await pa.press("escape")

            # search finds what was said, in the service
            assert [e.body["text"] for e in a_app.service.search(bob["id"], "HI BOB")] == [
                "hi bob [b]not bold[/b]"
            ]
            await pa.press("ctrl+q")
            await pb.press("ctrl+q")

    asyncio.run(run())


def test_help_screen_and_compose_keys(three, nats_url, handle_server):
    app = ChatApp(session(three["alice"], nats_url, handle_server))

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("f1")
            assert isinstance(app.screen, InfoScreen) and "ctrl+n" in str(app.screen.text)
            await pilot.press("escape")
            compose = app.query_one(ComposeArea)
            compose.focus()
            await type_text(pilot, "one")
            await pilot.press("ctrl+j")
            await type_text(pilot, "two")
            assert compose.text == "one\ntwo"
            await pilot.press("enter")  # no conversation open: nothing is sent, the box is history
            assert compose.text == ""
            await pilot.press("up")
            assert compose.text == "one\ntwo"
            await pilot.press("ctrl+q")

    asyncio.run(run())


def test_badges_and_outside_text():
    assert [render.badge(n) for n in (0, 1, 99, 100, 12345)] == ["", "1", "99", "99+", "99+"]
    line = render.conversation_line({"peer": "x", "contact": "[red]eve\x1b[2J", "unread": 120})
    assert line.plain == "[red]eve\\x1b[2J (99+)"


def test_kez_help_does_not_import_textual():
    code = (
        "import sys\nfrom kez_cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_serve')], 'textual imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "chat" in proc.stdout


def test_a_file_sent_with_slash_file_or_the_picker_arrives(
    three, nats_url, handle_server, tmp_path, monkeypatch
):
    alice, bob = three["alice"], three["bob"]
    note = tmp_path / "note.txt"
    note.write_bytes(b"a file for bob\n" * 100)
    a_app = ChatApp(session(alice, nats_url, handle_server))
    b_app = ChatApp(session(bob, nats_url, handle_server))

    async def run() -> None:
        async with a_app.run_test(size=(120, 40)) as pa, b_app.run_test(size=(120, 40)) as pb:
            await until(pa, lambda: a_app.links.get("nats") == "live", "alice's feed")
            await until(pb, lambda: b_app.links.get("nats") == "live", "bob's feed")
            a_app.open_peer(bob["id"])
            b_app.open_peer(alice["id"])
            a_app.query_one(ComposeArea).focus()
            await type_text(pa, f"/file {note}")
            await pa.press("enter")
            await until(
                pb,
                lambda: any("note.txt" in t and "saved to" in t for t in bubble_texts(b_app)),
                "the file at bob's",
            )
            await until(pa, lambda: states(a_app) == ["delivered"], "the file delivered")
            [entry] = (await b_app.service.history(alice["id"]))[1]
            assert open(entry.to_json()["file"]["path"], "rb").read() == note.read_bytes()

            # a file that cannot be sent: its echo goes, the reason shows, nothing is stored
            await type_text(pa, f"/file {tmp_path}/missing.bin")
            await pa.press("enter")
            await until(pa, lambda: len(a_app.query(Bubble)) == 1, "the failed echo to go")
            assert len((await a_app.service.history(bob["id"]))[1]) == 1

            # ctrl+t: the file picker, from the keyboard alone; it starts in the current folder
            await pa.press("ctrl+t")
            await until(pa, lambda: isinstance(a_app.screen, FilePickScreen), "the picker")
            tree = a_app.screen.query_one(DirectoryTree)
            await until(
                pa,
                lambda: tree.cursor_node is not None and len(tree.root.children) >= 2,
                "the folder",
            )
            assert Path(tree.path) == tmp_path

            async def down_to(name: str) -> None:
                for _ in range(40):
                    if str(tree.cursor_node.label) == name:
                        return
                    await pa.press("down")
                raise AssertionError(f"{name} is not in the picker")

            await down_to("pictures")
            await pa.press("enter")  # opens the folder
            await until(pa, lambda: tree.cursor_node.children, "the folder's files")
            await down_to("sky.txt")  # the picture, named as if it were text
            await pa.press("enter")
            await until(
                pa, lambda: not isinstance(a_app.screen, FilePickScreen), "the picker to close"
            )
            await until(pb, lambda: b_app.query(ImageBubble), "the picture at bob's")
            [picture] = b_app.query(ImageBubble)
            await until(pb, lambda: picture.query(".image"), "the picture shown inline")
            await until(pa, lambda: states(a_app)[-1] == "delivered", "the picture delivered")

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pictures").mkdir()
    from PIL import Image

    Image.new("RGB", (90, 60), (10, 120, 200)).save(tmp_path / "pictures" / "sky.txt", "PNG")
    asyncio.run(run())


def _fake_program(folder, name: str, log) -> None:
    """A stand-in for a desktop program (notify-send, xdg-open): it writes its arguments to `log`."""
    folder.mkdir(exist_ok=True)
    script = folder / name
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" >> {log}\n")
    script.chmod(0o755)


def test_notifications_file_progress_save_and_open(
    three, nats_url, handle_server, tmp_path, monkeypatch
):
    alice, bob = three["alice"], three["bob"]
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.txt"
    _fake_program(bin_dir, "notify-send", calls)
    _fake_program(bin_dir, "xdg-open", calls)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    big = tmp_path / "photo.bin"
    big.write_bytes(
        os.urandom(1800 * 1024)
    )  # chunked: more than INLINE_MAX, 4 chunks of 511 KiB over NATS
    a_app = ChatApp(session(alice, nats_url, handle_server))
    b_app = ChatApp(session(bob, nats_url, handle_server), desktop_notify=True)
    statuses: list[str] = []
    show_status = b_app._show_status

    def spy() -> None:
        show_status()
        statuses.append(str(b_app.query_one("#status").render()))

    b_app._show_status = spy

    async def run() -> None:
        async with a_app.run_test(size=(80, 24)) as pa, b_app.run_test(size=(80, 24)) as pb:
            await until(pa, lambda: a_app.links.get("nats") == "live", "alice's feed")
            await until(pb, lambda: b_app.links.get("nats") == "live", "bob's feed")
            a_app.open_peer(bob["id"])
            a_app.query_one(ComposeArea).focus()
            # a message in a conversation Bob has not open: a desktop notification (notify-send)
            await type_text(pa, "look at this")
            await pa.press("enter")
            await until(
                pb,
                lambda: calls.exists() and "look at this" in calls.read_text(),
                "the notification",
            )
            assert f"kez: {alice['id'][:21]}…" in calls.read_text()
            # a chunked file: "Receiving N/M…" while its chunks arrive, gone once it is complete
            await type_text(pa, f"/file {big}")
            await pa.press("enter")
            await until(
                pa,
                lambda: states(a_app)[-1:] == ["delivered"] and len(states(a_app)) == 2,
                "delivered",
            )
            await until(pb, lambda: not b_app.receiving, "the file complete")
            assert any("Receiving file 1/4…" in s for s in statuses), (
                statuses
            )  # chunks come before the name
            assert "Receiving" not in str(b_app.query_one("#status").render())
            # Bob opens the conversation, saves a copy (ctrl+s) and opens the file (ctrl+o)
            b_app.open_peer(alice["id"])
            b_app.query_one(ComposeArea).focus()
            await pb.press("ctrl+s")
            await until(pb, lambda: isinstance(b_app.screen, PromptScreen), "the save prompt")
            copy = tmp_path / "copy.bin"
            await type_text(pb, str(copy))
            await pb.press("enter")
            await until(pb, lambda: copy.exists(), "the copy")
            assert copy.read_bytes() == big.read_bytes()
            await pb.press("ctrl+s")  # the same name again is refused, nothing overwritten
            await until(pb, lambda: isinstance(b_app.screen, PromptScreen), "the save prompt")
            await type_text(pb, str(copy))
            await pb.press("enter")
            await pb.press("ctrl+o")
            await until(pb, lambda: "photo" in calls.read_text().splitlines()[-1], "xdg-open")
            saved = calls.read_text().splitlines()[-1]
            assert open(saved, "rb").read() == big.read_bytes()
            assert (
                "kez: " in calls.read_text() and "file photo.bin" in calls.read_text()
            )  # its notification

    asyncio.run(run())


def test_a_copy_never_overwrites(tmp_path):
    from kez_core.chat.received_files import copy_received
    from kez_core.errors import StoreError

    source = tmp_path / "a.txt"
    source.write_text("x")
    folder = tmp_path / "out"
    folder.mkdir()
    assert copy_received({"path": str(source)}, folder) == folder / "a.txt"
    with pytest.raises(StoreError):
        copy_received({"path": str(source)}, folder / "a.txt")
    with pytest.raises(StoreError):
        copy_received({"path": str(tmp_path / "gone")}, folder / "b.txt")


def test_the_passphrase_is_asked_inside_the_app(capsys, tmp_path, monkeypatch):
    home = tmp_path / "carol"
    monkeypatch.setenv("KEZ_PASSPHRASE", "right horse")
    kez_json(capsys, home, "identity", "new", "--name", "carol")
    monkeypatch.delenv("KEZ_PASSPHRASE")
    store = Keystore(home, registry=default_registry())
    app = ChatApp(ChatSession(store, store.get(), []))

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            assert not app.unlocked and app.session.needs_passphrase
            await type_text(pilot, "wrong")
            await pilot.press("enter")
            assert not app.unlocked
            assert str(app.screen.query_one("#prompt-error").render()) != ""
            await type_text(pilot, "right horse")
            await pilot.press("enter")
            await pilot.pause()
            assert app.unlocked
            assert "no transport" in str(app.query_one("#status").render())
            await pilot.press("ctrl+q")

    asyncio.run(run())


from hypothesis import given, strategies as st  # noqa: E402
from kez_core.safetext import is_unsafe  # noqa: E402


@given(name=st.text(max_size=40), body=st.text(max_size=200), unread=st.integers(-5, 10**6))
def test_outside_text_never_reaches_the_screen_raw(name, body, unread):
    from datetime import UTC, datetime

    from kez_core.chat import Entry

    line = render.conversation_line({"peer": "x", "handle": name, "unread": unread})
    entry = Entry(
        "k",
        "p",
        "in",
        "sent",
        "2026-12-06T10:00:00Z",
        False,
        True,
        {"kind": "text", "text": body},
        name,
    )
    shown = render.bubble(entry, datetime(2026, 12, 6, tzinfo=UTC))
    for text in (line.plain, shown.plain):
        assert not [
            c for c in text if is_unsafe(c) and c not in "\n\t"
        ]  # a body keeps its lines and tabs
    assert shown.spans == [s for s in shown.spans if s.style == "dim"]  # no markup became style


def test_a_lost_connection_shows_and_so_does_its_recovery(three, handle_server):
    from kez_transport_nats.testing import nats_server_binary

    with running_nats_server() as server:
        app = ChatApp(session(three["bob"], server.url, handle_server))
        again: list[subprocess.Popen] = []

        async def run() -> None:
            async with app.run_test(size=(80, 24)) as pilot:
                await until(pilot, lambda: app.links.get("nats") == "live", "the feed")
                server.stop()
                await until(pilot, lambda: app.links["nats"].startswith("lost"), "the loss")
                assert "lost" in str(app.query_one("#status").render())
                again.append(
                    subprocess.Popen(
                        [nats_server_binary(), "-a", "127.0.0.1", "-p", str(server.port)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
                await until(pilot, lambda: app.links["nats"] == "live", "the recovery", timeout=40)
                await pilot.press("ctrl+q")

        try:
            asyncio.run(run())
        finally:
            for proc in again:
                proc.kill()
                proc.wait()


def test_kez_chat_web_serves_the_app_on_localhost(three):
    import time

    import httpx
    from kez_transport_nats.testing import free_port

    port = free_port()
    env = {**os.environ, "KEZ_HOME": str(three["alice"]["home"]), "KEZ_PASSPHRASE": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kez_cli", "chat", "--web", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        assert answer.status_code == 200 and "textual" in answer.text.lower()
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_app_renews_the_inbox_key_and_pushes_the_chain(
    capsys, tmp_path, monkeypatch, nats_url, handle_server
):
    """On its last day the inbox key is renewed when the app starts listening, as every
    receiving command does, and the chain goes to the configured kez-servers, so senders
    find the new key without the owner running `kez sigchain publish`."""
    import httpx

    from kez_core.sigserver_client import chain_url

    monkeypatch.setenv("KEZ_PASSPHRASE", "")
    monkeypatch.setenv("KEZ_SIG_SERVERS", handle_server.url)
    home = tmp_path / "dave"
    dave = kez_json(capsys, home, "identity", "new", "--name", "dave", "--no-passphrase")
    kez_json(capsys, home, "sigchain", "init")
    old = kez_json(capsys, home, "sigchain", "add-inbox", "--expires-in", "12h")["inbox_key"]
    app = ChatApp(session({"home": home}, nats_url, handle_server))
    seen: list[str] = []

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.links.get("nats") == "live", "the feed")
            seen.extend(str(n.message) for n in app._notifications)
            await pilot.press("ctrl+q")

    asyncio.run(run())
    assert any("published a new inbox key" in text for text in seen), seen
    identity = dave.get("identity_id") or dave.get("id")
    body = httpx.get(chain_url(handle_server.url, identity)).text
    assert old in body and body.count('"add_inbox"') >= 2, "the server has the renewed chain"
