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
