"""Received pictures in `kez chat`, and choosing which received file to save or open.

Over the offline store (chat_offline.py: a real ChatStore, no server): Bob's
thread gets received files on disk, as the files layer leaves them. A
picture is known by its bytes, never its name; one that does not decode
(corrupt, truncated, a header claiming 2.5 gigapixels) stays a file card
with the reason, and the app goes on.
"""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from pathlib import Path

import pytest
from chat_offline import BOB, OfflineService, OfflineSession, clock, make_store

from kez_core.chat.images import preview_image, sniff_image
from kez_core.errors import DecodeError, SizeLimitError


def png_bytes(size=(64, 32), color=(200, 40, 40)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def bomb_png(side: int = 50_000) -> bytes:
    """A PNG whose header claims side x side pixels, with almost no data: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_a_picture_is_known_by_its_bytes():
    assert sniff_image(png_bytes()) == "png"
    assert sniff_image(b"\xff\xd8\xff\xe0rest") == "jpeg"
    assert sniff_image(b"GIF89a....") == "gif"
    assert sniff_image(b"RIFF\0\0\0\0WEBPVP8 ") == "webp"
    assert sniff_image(b"hello, this is text") is None
    assert sniff_image(b"") is None


def test_preview_decodes_small_and_refuses_hostile(tmp_path):
    good = tmp_path / "x.bin"  # any name: the bytes decide
    good.write_bytes(png_bytes((2000, 1000)))
    shown = preview_image(good)
    assert shown.size == (512, 256) and shown.mode == "RGB"
    cases = {
        "text.png": b"not a picture at all",
        "corrupt.png": png_bytes()[:40] + b"\0garbage" * 20,
        "truncated.png": png_bytes((300, 300))[:-30],
        "bomb.png": bomb_png(),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DecodeError):
            preview_image(tmp_path / name)
    with pytest.raises(SizeLimitError):
        preview_image(tmp_path / "bomb.png")
    with pytest.raises(SizeLimitError):
        preview_image(good, max_bytes=100)
    with pytest.raises(DecodeError):
        preview_image(tmp_path / "missing.png")


def _received(store, key: str, path: Path, name: str, minutes: int) -> None:
    from chat_offline import _at

    store.add_incoming(
        key,
        BOB,
        _at(minutes),
        {
            "kind": "file",
            "file": {
                "name": name,
                "size": path.stat().st_size,
                "sha256": "0" * 64,
                "state": "complete",
                "path": str(path),
                "transfer": key * 8,
                "count": 1,
            },
        },
        stranger=False,
        ack=False,
    )


def pictures_app(tmp_path):
    from kez_cli.chat_app.app import ChatApp

    files = tmp_path / "files"
    files.mkdir()
    (files / "cat.png").write_bytes(png_bytes((120, 80)))
    (files / "broken.png").write_bytes(png_bytes()[:40] + b"\0garbage" * 20)
    (files / "notes.jpg").write_bytes(b"a text file with a picture's name\n")
    store = make_store(tmp_path)
    _received(store, "p-1", files / "cat.png", "cat.png", 4)
    _received(store, "p-2", files / "broken.png", "broken.png", 3)
    _received(store, "p-3", files / "notes.jpg", "notes.jpg", 2)
    app = ChatApp(OfflineSession(OfflineService(store)), clock=clock)  # type: ignore[arg-type]
    app.animation_level = "none"
    return app, files


async def until(pilot, check, what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def test_a_received_picture_shows_inline_and_a_broken_one_stays_a_card(tmp_path):
    from kez_cli.chat_app.app import Bubble, ImageBubble

    app, files = pictures_app(tmp_path)

    async def run() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            app.open_peer(BOB)
            await pilot.pause()
            pictures = {Path(b.picture).name: b for b in app.query(ImageBubble)}
            assert set(pictures) == {"cat.png", "broken.png"}  # notes.jpg is text: a plain card
            assert any("notes.jpg" in str(b.render()) for b in app.query(Bubble))
            cat, broken = pictures["cat.png"], pictures["broken.png"]
            await until(
                pilot, lambda: cat.query(".image") and broken.failed, "the pictures decoded"
            )
            [image] = cat.query(".image")
            assert image.size.width > 0 and image.size.height > 0
            assert 'picture "cat.png" (' in str(cat.query_one(".card").render())
            assert not broken.query(".image")
            card = str(broken.query_one(".card").render())
            assert (
                'file "broken.png" (' in card and "saved to" in card and "not shown" in card
            )  # the file card
            # the app goes on: the conversation still answers keys
            await pilot.press("f1")
            await pilot.press("escape")
            app.exit()

    asyncio.run(run())


def test_save_and_open_ask_which_file_and_where(tmp_path, monkeypatch):
    from kez_cli.chat_app.app import ComposeArea, FileListScreen, PromptScreen

    log = tmp_path / "opened.txt"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "xdg-open").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" >> {log}\n")
    (bin_dir / "xdg-open").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "Downloads").mkdir(parents=True)
    app, files = pictures_app(tmp_path)

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            app.open_peer(BOB)
            app.query_one(ComposeArea).focus()
            await pilot.pause()
            await pilot.press("ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, FileListScreen), "the list of files")
            names = [item.file["name"] for item in app.screen.query("FileItem")]
            assert names == ["notes.jpg", "broken.png", "cat.png"]  # newest first
            await pilot.press("down", "down", "enter")  # the third: cat.png
            await until(pilot, lambda: isinstance(app.screen, PromptScreen), "where to")
            offered = app.screen.query_one("#prompt-input").value
            assert offered == str(tmp_path / "home" / "Downloads" / "cat.png")
            await pilot.press("enter")  # the offered path as it is
            target = tmp_path / "home" / "Downloads" / "cat.png"
            await until(pilot, lambda: target.exists(), "the copy")
            assert target.read_bytes() == (files / "cat.png").read_bytes()
            # escape on the list: nothing happens
            await pilot.press("ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, FileListScreen), "the list again")
            await pilot.press("escape")
            assert not isinstance(app.screen, (FileListScreen, PromptScreen))
            # ctrl+o: pick, then xdg-open gets that file
            await pilot.press("ctrl+o")
            await until(pilot, lambda: isinstance(app.screen, FileListScreen), "the list to open")
            await pilot.press("down", "enter")
            await until(pilot, lambda: log.exists() and log.read_text().strip(), "xdg-open")
            assert log.read_text().split() == [str(files / "broken.png")]
            app.exit()

    asyncio.run(run())


@pytest.mark.parametrize(
    "size", [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
)
def test_snapshot_a_received_picture(snap_compare, tmp_path, monkeypatch, size):
    """Bob's thread with a picture shown inline (half-blocks: what Pilot's terminal gets), a
    broken picture as its file card with the reason, and a text file named .jpg as a card."""
    from kez_cli.chat_app.app import ImageBubble

    # The cards show the files' paths, so they must read the same on every run: the files
    # are stored under a relative path in this run's own folder (never a shared fixed one,
    # which two runs at once would empty under each other).
    monkeypatch.chdir(tmp_path)
    folder = Path("kez-chat-snapshot-pictures")
    folder.mkdir()
    app, _ = pictures_app(folder)

    async def open_bob(pilot) -> None:
        app.open_peer(BOB)
        await pilot.pause()
        await until(
            pilot,
            lambda: all(b.query(".image") or b.failed for b in app.query(ImageBubble)),
            "decoded",
        )
        app.query_one("#messages").scroll_end(animate=False)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=open_bob)


def test_the_collector_is_given_back_when_the_apps_end(tmp_path):
    """Two apps at once (as alice and bob in one test): full collections wait while either runs,
    and the thresholds are as before once both have ended."""
    import gc

    from chat_offline import offline_app

    before = gc.get_threshold()
    one, two = offline_app(tmp_path / "one"), offline_app(tmp_path / "two")

    async def run() -> None:
        async with one.run_test(size=(80, 24)) as p1, two.run_test(size=(80, 24)) as p2:
            await until(p1, lambda: one._gc_held, "the first app")
            await until(p2, lambda: two._gc_held, "the second app")
            assert gc.get_threshold()[2] == 1_000_000
            one.exit()
        assert gc.get_threshold() == before

    asyncio.run(run())
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
