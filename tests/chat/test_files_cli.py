"""`kez message send PEER --file` and `listen` over real servers: 1 MB over nats-server, 200 KB over
a nostr relay (throttled to 5 events a second), and the 10 MiB refusal."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from message_cli_helpers import kez, kez_json, listen


@pytest.mark.parametrize(("via", "size"), [("nats", 1_000_000), ("nostr", 200_000)])
def test_a_file_goes_over_a_real_transport(capsys, three, tmp_path, nats_url, relay_url, via, size):
    alice, bob = three["alice"], three["bob"]
    flags = ["--nats-url", nats_url] if via == "nats" else ["--transport-relay", relay_url]
    path = tmp_path / "photo ✓.jpg"
    path.write_bytes(os.urandom(size))
    save = tmp_path / "downloads"
    ears = listen(
        bob["home"], "--via", via, "--count", "1", "--wait", "120", "--save-dir", str(save), *flags
    )
    try:
        sent = kez_json(
            capsys,
            alice["home"],
            "message",
            "send",
            bob["id"],
            "--file",
            str(path),
            "--via",
            via,
            *flags,
        )
        assert [s["sent"] for s in sent] == [True] and sent[0]["state"] == "sent"
        out, err = ears.communicate(timeout=120)
    finally:
        ears.kill()
    assert ears.returncode == 0, err
    [got] = [d for d in map(json.loads, out.splitlines()) if d["event"] in ("message", "ack")]
    assert got["file"]["state"] == "complete", got
    saved = save / "photo ✓.jpg"
    assert got["file"]["path"] == str(saved) and saved.read_bytes() == path.read_bytes()
    [entry] = kez_json(capsys, bob["home"], "message", "history", alice["id"])
    assert entry["file"] == {
        "name": "photo ✓.jpg",
        "size": size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "mime": "image/jpeg",
        "state": "complete",
        "path": str(saved),
        "transfer": got["file"]["transfer"],
        "count": got["file"]["count"],
    }
    code, out, _ = kez(capsys, bob["home"], "message", "history", alice["id"])
    assert code == 0 and "saved to" in out


def test_over_ten_megabytes_is_refused_before_anything(capsys, three, tmp_path):
    path = tmp_path / "big.iso"
    with open(path, "wb") as f:
        f.truncate(10 * 1024 * 1024 + 1)
    code, out, err = kez(
        capsys, three["alice"]["home"], "message", "send", three["bob"]["id"], "--file", str(path)
    )
    assert code == 3 and "at most 10,485,760 bytes" in err and "Traceback" not in err
    assert kez_json(capsys, three["alice"]["home"], "message", "conversations") == []


def test_text_and_file_together_is_a_usage_error(capsys, three, tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("x")
    code, _, err = kez(
        capsys,
        three["alice"]["home"],
        "message",
        "send",
        three["bob"]["id"],
        "hi",
        "--file",
        str(path),
    )
    assert code == 2
