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
from message_cli_helpers import kez, kez_json, listen, send_args


@pytest.fixture(scope="module")
def inbox_server():
    with running_server() as server:
        yield server


def test_alice_sends_over_http_and_bob_listening_receives(capsys, two, inbox_server):
    alice, bob = two["alice"], two["bob"]
    kez_json(capsys, bob["home"], "handle", "register", "bobby", "--server", inbox_server.url)
    flags = ["--inbox-server", inbox_server.url]
    # one message stored before Bob listens: the catch-up delivers it
    sent = kez_json(
        capsys,
        alice["home"],
        *send_args(bob["chain"], "early", "http"),
        *flags,
    )
    assert [s["sent"] for s in sent] == [True]
    listener = listen(bob["home"], "--via", "http", "--count", "2", "--wait", "60", *flags)
    try:
        sent = kez_json(
            capsys,
            alice["home"],
            *send_args(bob["chain"], "live ✓", "http"),
            *flags,
        )
        assert [s["sent"] for s in sent] == [True]
        out, err = listener.communicate(timeout=60)
    finally:
        listener.kill()
    assert listener.returncode == 0, err
    received = [d for d in map(json.loads, out.splitlines()) if d["event"] in ("message", "ack")]
    assert [m["body"]["text"] for m in received] == ["early", "live ✓"]
    assert all(m["from"] == alice["id"] and m["sender_checked"] for m in received)


def test_sending_to_someone_without_a_handle_there_is_a_clear_error(capsys, two, inbox_server):
    alice, bob = two["alice"], two["bob"]
    code, _, err = kez(
        capsys,
        alice["home"],
        *send_args(bob["chain"], "x", "http"),
        "--inbox-server",
        inbox_server.url,
    )
    assert code == 5 and "no handle" in err and "Traceback" not in err


def _listen_all(home, *args: str) -> tuple[list[str], str]:
    """One listen run to its end: the texts printed, and stderr."""
    listener = listen(home, "--via", "http", *args)
    try:
        out, err = listener.communicate(timeout=60)
    finally:
        listener.kill()
    assert listener.returncode == 0, err
    return [
        d["body"]["text"]
        for d in [d for d in map(json.loads, out.splitlines()) if d["event"] in ("message", "ack")]
    ], err


def test_a_second_listen_goes_on_from_where_the_first_stopped(capsys, two, inbox_server):
    """The last seq shown is kept per identity, server, handle and inbox key: a later listen
    neither prints nor refuses (as replays) what an earlier one showed, and does not skip what
    an earlier one received but never showed."""
    alice, bob = two["alice"], two["bob"]
    kez_json(capsys, bob["home"], "handle", "register", "bobcur", "--server", inbox_server.url)
    flags = ["--inbox-server", inbox_server.url]
    for text in ("one", "two", "three"):
        kez_json(
            capsys,
            alice["home"],
            *send_args(bob["chain"], text, "http"),
            *flags,
        )
    texts, _ = _listen_all(bob["home"], "--count", "1", "--wait", "30", *flags)
    assert texts == ["one"]
    texts, err = _listen_all(bob["home"], "--count", "2", "--wait", "30", *flags)
    assert texts == ["two", "three"] and "refused" not in err, err
    texts, err = _listen_all(bob["home"], "--wait", "1.5", *flags)
    assert texts == [] and "refused" not in err, err
    cursors = list((bob["home"] / "identities").rglob("http-inbox-cursors/*"))
    assert cursors and all(p.stat().st_mode & 0o777 == 0o600 for p in cursors)
    # --inbox-since still wins: from 0, everything the server holds comes again (replays, refused)
    texts, err = _listen_all(bob["home"], "--wait", "1.5", "--inbox-since", "0", *flags)
    assert texts == [] and err.count("refused") == 3, err
