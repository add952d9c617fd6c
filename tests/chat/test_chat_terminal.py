"""The real `kez chat` command as a person meets it: in a terminal (tmux) and in a browser tab.

- tmux: `kez chat` runs in a detached 80x24 tmux session; the test types the
  passphrase and a message with `send-keys` and reads the screen with
  `capture-pane`, as a person would see it. Skipped when tmux is not installed.
- browser: `kez chat --web` is opened in headless Chromium (Debian's
  `chromium`, driven by Playwright through its executable path; Playwright's own
  browser download is never used). The test types the passphrase into the page
  and sees the conversation list in what the page's terminal receives.
  Skipped, with the reason shown by `-ra`, when chromium or playwright is missing
  (CI: a fresh clone without apt).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kez_transport_nats.testing import free_port, running_nats_server
from message_cli_helpers import kez, kez_json, make_people

PASSPHRASE = "right horse"


@pytest.fixture
def alice_and_bob(capsys, tmp_path, monkeypatch):
    """Alice with a passphrase (the app asks for it), Bob a contact of hers named "bob"."""
    monkeypatch.setenv("KEZ_PASSPHRASE", "")
    bob = make_people(capsys, tmp_path, ["bob"])["bob"]
    home = tmp_path / "alice"
    monkeypatch.setenv("KEZ_PASSPHRASE", PASSPHRASE)
    kez_json(capsys, home, "identity", "new", "--name", "alice")
    kez_json(capsys, home, "sigchain", "init")
    kez_json(capsys, home, "sigchain", "add-inbox")
    kez_json(capsys, home, "sigchain", "import", str(bob["chain"]))
    code, _, err = kez(capsys, home, "contact", "add", "bob", bob["id"])
    assert code == 0, err
    monkeypatch.delenv("KEZ_PASSPHRASE")
    return home, bob


def seed_history(home: Path, peer: str) -> None:
    """One message to `peer` in Alice's local history (no transport needed), so the list has a row."""
    from kez_core.chat import MessagingService
    from kez_core.keystore import Keystore
    from kez_core.registry import default_registry

    store = Keystore(home, registry=default_registry())
    service = MessagingService(store, store.get(), lambda: PASSPHRASE.encode())
    try:
        service.store.add_outgoing(
            "seeded-1", peer, "2026-12-06T10:00:00Z", {"kind": "text", "text": "seeded"}
        )
    finally:
        service.close()


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KEZ_PASSPHRASE"}
    env.update(KEZ_HOME=str(home), TERM="xterm-256color", COLORTERM="truecolor")
    return env


class Tmux:
    """One tmux server of our own (its socket in the test's folder), one session."""

    def __init__(self, socket: Path) -> None:
        self.base = [shutil.which("tmux") or "tmux", "-S", str(socket), "-f", "/dev/null"]
        self.env: dict[str, str] | None = None

    def __call__(self, *args: str) -> str:
        return subprocess.run(
            [*self.base, *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
            env=self.env,
        ).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "chat")

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if text in shown:
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never shown; the screen:\n{shown}")
            time.sleep(0.2)

    def wait_gone(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text in (shown := self.screen()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} still shown; the screen:\n{shown}")
            time.sleep(0.1)


@pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"
)
def test_kez_chat_in_tmux(alice_and_bob, tmp_path):
    home, bob = alice_and_bob
    with running_nats_server() as nats:
        command = subprocess.list2cmdline(
            [sys.executable, "-m", "kez_cli", "chat", "--via", "nats", "--nats-url", nats.url]
        )
        tmux = Tmux(tmp_path / "tmux.sock")
        tmux.env = _env(home)
        env_args = [
            a
            for k, v in _env(home).items()
            if k in ("KEZ_HOME", "PATH", "HOME", "COLORTERM")
            for a in ("-e", f"{k}={v}")
        ]
        tmux("new-session", "-d", "-s", "chat", "-x", "80", "-y", "24", *env_args, command)
        try:
            tmux.wait_for("Passphrase for identity alice")
            tmux("send-keys", "-t", "chat", "-l", "wrong")
            tmux("send-keys", "-t", "chat", "Enter")
            tmux.wait_for("passphrase")  # still asked: the wrong one is refused inside the app
            assert "Passphrase for identity alice" in tmux.screen()
            tmux("send-keys", "-t", "chat", "-l", PASSPHRASE)
            tmux("send-keys", "-t", "chat", "Enter")
            shown = tmux.wait_for("nats: live")
            assert "Chats" in shown and "Requests" in shown
            # a conversation with the contact "bob": who it is first, then the thread
            tmux("send-keys", "-t", "chat", "C-n")
            tmux.wait_for("Write to")
            tmux("send-keys", "-t", "chat", "-l", "bob")
            tmux("send-keys", "-t", "chat", "Enter")
            shown = tmux.wait_for("Safety number")
            assert bob["id"][:30] in shown.replace("\n", "")
            tmux("send-keys", "-t", "chat", "Enter")
            tmux.wait_gone(
                "Safety number"
            )  # keys sent before the screen closes would go to it (a loaded machine)
            tmux("send-keys", "-t", "chat", "-l", "hello from tmux [b]x[/b]")
            tmux("send-keys", "-t", "chat", "Enter")
            shown = tmux.wait_for("via nats")
            assert "hello from tmux [b]x[/b]" in shown  # markup shown as written
            assert re.search(r"\d\d:\d\d +✓ sent +via nats", shown), shown
            lines = shown.splitlines()
            assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
            assert any(line.lstrip(" │").startswith("bob") for line in lines)  # the sidebar row
            tmux("send-keys", "-t", "chat", "C-q")
            deadline = time.monotonic() + 15
            while (
                "chat" in subprocess.run([*tmux.base, "ls"], capture_output=True, text=True).stdout
            ):
                assert time.monotonic() < deadline, "kez chat did not quit on ctrl+q"
                time.sleep(0.2)
        finally:
            subprocess.run([*tmux.base, "kill-server"], capture_output=True)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browser_skip() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (uv sync: it is in the dev group)"
    if _chromium() is None:
        return "no system chromium (Debian: apt-get install chromium); Playwright's download is not used"
    return None


ANSI = re.compile(
    r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[\]P_^][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b."
)


@pytest.mark.skipif(_browser_skip() is not None, reason=str(_browser_skip()))
def test_kez_chat_web_in_headless_chromium(alice_and_bob, tmp_path):
    from playwright.sync_api import sync_playwright

    home, bob = alice_and_bob
    seed_history(home, bob["id"])
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kez_cli", "chat", "--web", "--port", str(port)],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    received: list[str] = []

    def seen() -> str:
        return ANSI.sub("", "".join(received))

    def wait_for(page, text: str, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in seen():
            if time.monotonic() > deadline:
                page.screenshot(path=str(tmp_path / "page.png"))
                raise AssertionError(
                    f"{text!r} never shown (screenshot: {tmp_path / 'page.png'}); "
                    f"the page got: {seen()[-2000:]!r}"
                )
            page.wait_for_timeout(200)

    def frame(payload: str | bytes) -> None:
        received.append(
            payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        )

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=_chromium(),
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.on("websocket", lambda ws: ws.on("framereceived", frame))
                deadline = time.monotonic() + 30
                while True:
                    try:
                        page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
                        break
                    except Exception:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise
                        time.sleep(0.3)
                wait_for(page, "Passphrase for identity alice")
                page.locator(".xterm-screen").click()
                page.keyboard.type(PASSPHRASE)
                page.keyboard.press("Enter")
                wait_for(page, "Requests")
                wait_for(page, "bob")  # the contact, in the conversation list
                assert "Chats" in seen() and "no transport" in seen()
                page.screenshot(path=str(tmp_path / "page.png"))
            finally:
                browser.close()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(10)
