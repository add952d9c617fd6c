"""`kez message listen --notify`: notify-send run without a shell, text escaped and cut; else a bell."""

from __future__ import annotations

import json
import os
import stat

from hypothesis import given, settings
from hypothesis import strategies as st
from kez_cli.notify import MAX_BODY, MAX_TITLE, notify, notify_command


def _fake_notify_send(folder):
    """A real program named notify-send that writes its arguments as JSON to a file."""
    script = folder / "notify-send"
    script.write_text(
        "#!/usr/bin/env python3\nimport json, sys, pathlib\n"
        f"pathlib.Path({str(folder / 'args.json')!r}).write_text(json.dumps(sys.argv[1:]))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder / "args.json"


def test_notify_send_gets_escaped_cut_text_after_a_double_dash(tmp_path, monkeypatch):
    out = _fake_notify_send(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    notify("kez: -x\x1b[31mred", "$(rm -rf ~) \u202e" + "y" * 500)
    args = json.loads(out.read_text())
    assert args[:2] == ["--app-name=kez", "--"]
    title, body = args[2:]
    assert (
        "\x1b" not in title and "\u202e" not in body and "$(rm -rf ~)" in body
    )  # shown, never run
    assert len(title) <= MAX_TITLE and len(body) <= MAX_BODY and body.endswith("…")


def test_without_notify_send_a_bell(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert notify_command("t", "b") is None
    notify("t", "b")
    assert capsys.readouterr().err == "\a"


@settings(max_examples=200)
@given(st.text(), st.text())
def test_any_text_gives_a_safe_argument_list(title, body):
    command = notify_command(title, body) or ["notify-send", "--app-name=kez", "--", "", ""]
    for arg in command[3:]:
        assert "\x00" not in arg and not any(ord(c) < 32 for c in arg)
