"""`kez message send/listen --via http`: Alice and Bob through a real kez-server's inbox.

Bob registers a handle (`kez handle register`) on a kez-server under
uvicorn on 127.0.0.1 and listens in a subprocess; Alice sends in-process
with only Bob's chain and the server's URL: the transport finds Bob's
handle with GET /v1/by-primary and POSTs the envelope there.
"""

from __future__ import annotations

import json

import pytest
from kez_server.testing import running_server
from message_cli_helpers import kez, kez_json
from test_cli_message_transports import listen


@pytest.fixture(scope="module")
def inbox_server():
    with running_server() as server:
        yield server


def test_alice_sends_over_http_and_bob_listening_receives(capsys, two, inbox_server):
    alice, bob = two["alice"], two["bob"]
    kez_json(capsys, bob["home"], "handle", "register", "bobby", "--server", inbox_server.url)
    flags = ["--inbox-server", inbox_server.url]
    # one message stored before Bob listens: the catch-up delivers it
    sent = kez_json(capsys, alice["home"], "message", "send", "--to", str(bob["chain"]), "--text", "early", "--via", "http", *flags)
    assert [s["sent"] for s in sent] == [True]
    listener = listen(bob["home"], "--via", "http", "--count", "2", "--wait", "60", *flags)
    try:
        sent = kez_json(capsys, alice["home"], "message", "send", "--to", str(bob["chain"]), "--text", "live ✓", "--via", "http", *flags)
        assert [s["sent"] for s in sent] == [True]
        out, err = listener.communicate(timeout=60)
    finally:
        listener.kill()
    assert listener.returncode == 0, err
    received = [json.loads(line) for line in out.splitlines()]
    assert [m["body"]["text"] for m in received] == ["early", "live ✓"]
    assert all(m["from"] == alice["id"] and m["sender_checked"] for m in received)


def test_sending_to_someone_without_a_handle_there_is_a_clear_error(capsys, two, inbox_server):
    alice, bob = two["alice"], two["bob"]
    code, _, err = kez(capsys, alice["home"], "message", "send", "--to", str(bob["chain"]), "--text", "x",
                       "--via", "http", "--inbox-server", inbox_server.url)
    assert code == 5 and "no handle" in err and "Traceback" not in err
