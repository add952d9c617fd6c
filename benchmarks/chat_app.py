"""`kez chat`: time to first paint, and scrolling a 10,000-message thread (issue 14, "Measured").

    uv run python benchmarks/chat_app.py                  # 5 rounds, 10,000 messages, 40 pages each way
    uv run python benchmarks/chat_app.py --rounds 3 --messages 2000 --pages 20

1. First paint: from creating the app to its first screen with the
   conversation list filled in (`App.run_test()` up to the first settled frame),
   against Textual's own hello-world (an `App` showing one `Static`), measured
   alternately in the same run; the ratio of the medians is printed (the
   machine is shared: absolute times swing, the ratio much less). The app runs
   over a local store with three conversations (no servers:
   tests/chat/chat_offline.py), one of them 10,000 messages long.
2. Scrolling: that conversation is opened (time printed), the thread gets the
   focus, and Pilot presses page-up N times then page-down N times; each
   press is timed until the screen has settled (`pilot.press` + waiting for
   the screen), with animations off so a press is one new frame (the scroll
   animation would otherwise add its own 0.5 s or so): p50, p99, max. The thread is a
   sliding window: the latest messages (`THREAD_WINDOW`), earlier ones mounted a
   window at a time when page-up reaches its top, later ones when page-down
   reaches its bottom, and never more than `THREAD_MOUNTED` bubble widgets (the
   far end is unmounted); the number of bubble widgets at the end is printed.
   The app holds CPython's full garbage collections until 2 s without input
   (`ChatApp._tame_gc`): the count of those that ran during the presses is printed.

Target (issue 14): first paint within a small multiple of hello-world; no
frame over 100 ms while scrolling (a stall a person notices).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "chat"))

from textual.app import App, ComposeResult  # noqa: E402
from textual.widgets import Static  # noqa: E402

from chat_offline import BOB, offline_app  # noqa: E402

from kez_cli.chat_app.app import THREAD_WINDOW  # noqa: E402


class Hello(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("Hello, world!")


async def first_paint(make_app, ready) -> float:
    app = make_app()
    start = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert ready(app)
        took = time.perf_counter() - start
        app.exit()
    return took


def listed(app) -> bool:
    from kez_cli.chat_app.app import PeerItem

    return len(app.query(PeerItem)) == 3


async def scrolling(folder: Path, messages: int, pages: int) -> None:
    app = offline_app(folder, thread_size=messages)
    app.animation_level = "none"  # one press, one frame: the time to it is what a person waits
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        start = time.perf_counter()
        app.open_peer(BOB)
        await pilot.pause()
        opened = time.perf_counter() - start
        app.query_one("#messages").focus()
        await pilot.pause()
        screen = app.screen
        renders: list[float] = []
        refresh_layout = screen._refresh_layout

        def timed(*args, **kwargs):  # one frame: layout (when needed), compose, render the update
            t = time.perf_counter()
            try:
                return refresh_layout(*args, **kwargs)
            finally:
                renders.append((time.perf_counter() - t) * 1000)

        screen._refresh_layout = timed
        import gc

        full: list[int] = []

        def track(phase: str, info: dict) -> None:
            if phase == "stop" and info["generation"] == 2:
                full.append(1)

        gc.callbacks.append(track)
        presses: list[float] = []
        for key in ["pageup"] * pages + ["pagedown"] * pages:
            t = time.perf_counter()
            await pilot.press(key)
            presses.append((time.perf_counter() - t) * 1000)
        screen._refresh_layout = refresh_layout
        gc.callbacks.remove(track)
        bubbles = len(app.query(".bubble"))
        app.exit()
    print(
        f"open a {messages:,}-message thread: {opened * 1000:.0f} ms; bubble widgets after "
        f"{pages} page-ups: {bubbles:,} (from {min(messages, THREAD_WINDOW)} at first)"
    )
    print(f"scroll, {pages} page-up then {pages} page-down:")
    print("  frames rendered (Screen._refresh_layout): " + _stats(renders))
    print("  press to settled screen (incl. Pilot's own idle waits): " + _stats(presses))
    print(f"  full garbage collections during the presses: {len(full)}")


def _stats(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"n={len(values)}  p50 {statistics.median(values):.1f} ms  p99 {p99:.1f} ms  max {values[-1]:.1f} ms"


async def pilot_floor(pages: int) -> None:
    """The same presses in an app of 400 plain three-line Statics (30 pages): what a press costs
    Pilot and Textual themselves."""
    from textual.containers import VerticalScroll

    class Plain(App[None]):
        def compose(self) -> ComposeResult:
            with VerticalScroll(id="s"):
                for i in range(400):
                    yield Static(f"line {i}\nsecond line\nthird line")

    app = Plain()
    app.animation_level = "none"
    async with app.run_test(size=(120, 40)) as pilot:
        app.query_one("#s").focus()
        await pilot.pause()
        presses = []
        for key in ["pagedown"] * pages + ["pageup"] * pages:
            t = time.perf_counter()
            await pilot.press(key)
            presses.append((time.perf_counter() - t) * 1000)
        app.exit()
    print("  the same presses in a plain Textual app (400 three-line Statics): " + _stats(presses))


async def main(rounds: int, messages: int, pages: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kez-chat-bench-") as tmp:
        folder = Path(tmp)
        offline_app(folder / "store", thread_size=messages).session.close()  # made once, reused
        hello, kez = [], []
        await first_paint(Hello, lambda app: True)  # imports and caches warm for both
        for _ in range(rounds):
            hello.append(await first_paint(Hello, lambda app: True))
            kez.append(await first_paint(lambda: reopened(folder / "store"), listed))
        h, k = statistics.median(hello), statistics.median(kez)
        print(
            f"first paint, median of {rounds}: hello-world {h * 1000:.0f} ms, kez chat (conversation list) "
            f"{k * 1000:.0f} ms: ratio {k / h:.2f}"
        )
        await scrolling(folder / "scroll", messages, pages)
        await pilot_floor(pages)


def reopened(folder: Path):
    """The app over an existing store (not re-filled: first paint should not count the filling)."""
    from chat_offline import OfflineService, OfflineSession, clock
    from kez_core.chat.store import ChatStore

    from kez_cli.chat_app.app import ChatApp

    service = OfflineService(ChatStore(folder / "chat.db", b"\x07" * 32))
    return ChatApp(OfflineSession(service), clock=clock)  # type: ignore[arg-type]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.messages, args.pages))
