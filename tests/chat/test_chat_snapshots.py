"""Snapshots (pytest-textual-snapshot) of `kez chat`'s main screens at 80x24 and 120x40.

The app runs over a pre-made local store with fixed identities and a fixed
clock (chat_offline.py): no server, the same screen every run. The SVGs live
in tests/chat/__snapshots__/; after a deliberate change to the look, look at
the report and accept it with `pytest tests/chat/test_chat_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import pytest
from chat_offline import ALICE, BOB, bob_peer, bob_report, offline_app

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.mark.parametrize("size", SIZES)
def test_unlock(snap_compare, tmp_path, size):
    """The passphrase prompt inside the app, before anything is shown."""
    assert snap_compare(offline_app(tmp_path, locked=True), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_conversations_and_thread(snap_compare, tmp_path, size):
    """Sidebar (unread badges, 99+, a request), and Bob's thread: states, via, a file receiving."""
    app = offline_app(tmp_path)

    async def open_bob(pilot) -> None:
        app.open_peer(BOB)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=open_bob)


@pytest.mark.parametrize("size", SIZES)
def test_new_conversation_by_handle(snap_compare, tmp_path, size):
    """Who a handle is before the first message: keys, devices, claims with statuses, safety number."""
    from kez_cli.chat_app.app import InfoScreen, peer_details

    app = offline_app(tmp_path)

    async def show(pilot) -> None:
        text = peer_details(ALICE, bob_peer(), report=bob_report())
        await app.push_screen(InfoScreen(text, "enter: start the conversation   escape: cancel"))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=show)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, tmp_path, size):
    """F1: every key binding."""
    assert snap_compare(offline_app(tmp_path), terminal_size=size, press=["f1"])


async def settled_at_the_bottom(pilot, thread) -> None:
    """Wait for the thread's scroll to the latest message (it runs after the first layout)."""
    for _ in range(200):
        if thread.max_scroll_y > 0 and thread.scroll_y >= thread.max_scroll_y:
            return
        await pilot.pause(0.02)
    raise AssertionError("the thread never scrolled to its end")


def test_a_long_thread_is_a_window_and_page_up_at_its_top_shows_more(tmp_path):
    """500 messages: the thread mounts the latest THREAD_WINDOW, and page-up past its top the
    window before, keeping the message that was at the top in sight."""
    import asyncio

    from kez_cli.chat_app.app import THREAD_WINDOW, Bubble

    app = offline_app(tmp_path, thread_size=500)
    app.animation_level = "none"

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            app.open_peer(BOB)
            await pilot.pause()
            assert len(app.query(Bubble)) == THREAD_WINDOW
            assert "message 499 from bob" in str(list(app.query(Bubble))[-1].render())
            earlier = str(app.query_one("#earlier").render())
            assert f"{500 - THREAD_WINDOW} earlier messages" in earlier
            thread = app.query_one("#messages")
            thread.focus()
            await settled_at_the_bottom(pilot, thread)
            first = list(app.query(Bubble))[0]
            for _ in range(
                20
            ):  # page-ups until one would reach the top: it mounts the window before
                before = (thread.scroll_y, first.region.y)
                await pilot.press("pageup")
                await pilot.pause()
                if len(app.query(Bubble)) > THREAD_WINDOW:
                    break
            assert len(app.query(Bubble)) == 2 * THREAD_WINDOW
            assert f"{500 - 2 * THREAD_WINDOW} earlier" in str(app.query_one("#earlier").render())
            page = thread.scrollable_content_region.height
            # that press still moved a page up: the old first message is a page lower on the screen,
            # and there is more above to page into (no press stops at the edge)
            assert first.region.y == before[1] + page, (before, first.region.y, page)
            assert thread.scroll_y > 0
            app.exit()

    asyncio.run(run())


def test_the_window_slides_and_stays_bounded(tmp_path):
    """Far up a 500-message thread, at most THREAD_MOUNTED bubbles are widgets (the latest are
    unmounted, and a "later messages" line says so); page-down at the bottom brings them back,
    up to the latest message; a message sent meanwhile jumps back to the latest."""
    import asyncio

    from kez_cli.chat_app.app import THREAD_MOUNTED, THREAD_WINDOW

    app = offline_app(tmp_path, thread_size=500)
    app.animation_level = "none"

    def texts() -> list[str]:
        return [str(b.render()) for b in app.query(".bubble")]

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            app.open_peer(BOB)
            await pilot.pause()
            thread = app.query_one("#messages")
            thread.focus()
            await settled_at_the_bottom(pilot, thread)
            for _ in range(60):
                await pilot.press("pageup")
            assert len(texts()) == THREAD_MOUNTED
            assert app.shown_to is not None and app.query_one("#later").display
            assert f"{500 - app.shown_to} later messages" in str(app.query_one("#later").render())
            assert not any("message 499 from bob" in t for t in texts())
            top = app.shown_from
            for _ in range(200):
                if app.shown_to is None and thread.scroll_y >= thread.max_scroll_y:
                    break
                await pilot.press("pagedown")
            assert app.shown_to is None and not app.query_one("#later").display
            assert "message 499 from bob" in texts()[-1]
            assert len(texts()) <= THREAD_MOUNTED and app.shown_from > top
            keys = [f"message {i}" for i in range(500 - len(texts()), 500)]
            assert [
                t.split(" from")[0].split(" to")[0] for t in texts()
            ] == keys  # in order, none lost
            # scrolled back, a message sent (its local echo) brings the latest window back
            for _ in range(30):
                await pilot.press("pageup")
            assert app.shown_to is not None
            app.echo("back to now")
            await pilot.pause()
            assert app.shown_to is None and "back to now" in texts()[-1]
            assert "message 499 from bob" in texts()[-2] and len(texts()) == THREAD_WINDOW + 1
            app.exit()

    asyncio.run(run())
