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
            first = list(app.query(Bubble))[0]
            while thread.scroll_y > 0:
                await pilot.press("pageup")
            await pilot.press("pageup")
            await pilot.pause()
            assert len(app.query(Bubble)) == 2 * THREAD_WINDOW
            assert f"{500 - 2 * THREAD_WINDOW} earlier" in str(app.query_one("#earlier").render())
            assert thread.scroll_y > 0 and first.region.y >= 0  # the old top is still in the window
            app.exit()

    asyncio.run(run())
