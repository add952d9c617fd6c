"""`kez message send/listen --via nats` against a NATS server whose auth callout is kez-server.

No NATS flag but the URL: the CLI proves the identity's key on its own.
While Bob listens he adds an inbox key (`kez sigchain add-inbox`) and
publishes his chain; a message to the new key then arrives on the same
`listen` run (it subscribed again, and the callout allowed the new subject).
"""

from __future__ import annotations

import json

import pytest
from kez_server.nats_config import load_keys, render_config
from kez_server.testing import running_callout, running_server
from kez_transport_nats.testing import running_nats_server
from message_cli_helpers import kez, kez_json, listen, send_args


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("home") / "kez.db")
    with running_server(db=db) as server:
        with running_nats_server(config=render_config(load_keys(db), "127.0.0.1:4222")) as nats:
            with running_callout(server, nats.url):
                yield server, nats


def _register(capsys, person, server, name):
    kez_json(capsys, person["home"], "handle", "register", name, "--server", server.url)


def test_listen_and_send_authenticate_and_follow_a_new_inbox_key(capsys, two, home, tmp_path):
    server, nats = home
    alice, bob = two["alice"], two["bob"]
    _register(capsys, alice, server, "alice1")
    _register(capsys, bob, server, "bob1")
    flags = ["--nats-url", nats.url]
    listener = listen(bob["home"], "--via", "nats", "--count", "2", "--wait", "60", *flags)
    try:
        sent = kez_json(
            capsys,
            alice["home"],
            *send_args(bob["chain"], "one", "nats"),
            *flags,
        )
        assert [s["sent"] for s in sent] == [True]
        # Bob rotates his inbox key while listening, publishes, and shares his chain.
        added = kez_json(capsys, bob["home"], "sigchain", "add-inbox")
        kez_json(capsys, bob["home"], "sigchain", "publish", "--sig-server", server.url)
        chain = tmp_path / "bob2.jsonl"
        kez(capsys, bob["home"], "sigchain", "export", str(chain))
        kez_json(capsys, alice["home"], "sigchain", "import", str(chain))
        renewed = False
        for line in iter(listener.stderr.readline, ""):  # the listener subscribes to the new key
            if "listening on nats" in line and added["inbox_key"] in line:
                renewed = True
                break
        assert renewed
        sent = kez_json(
            capsys,
            alice["home"],
            *send_args(chain, "two", "nats"),
            *flags,
        )
        assert added["inbox_key"] in [s["inbox_key"] for s in sent]
        out, err = listener.communicate(timeout=60)
    finally:
        listener.kill()
    assert listener.returncode == 0, err
    assert [
        d["body"]["text"]
        for d in [d for d in map(json.loads, out.splitlines()) if d["event"] in ("message", "ack")]
    ] == ["one", "two"]


def test_an_unregistered_identity_is_refused_with_a_clear_error(capsys, two, home):
    _server, nats = home
    code, _out, err = kez(
        capsys,
        two["alice"]["home"],
        *send_args(two["bob"]["chain"], "x", "nats"),
        "--nats-url",
        nats.url,
    )
    assert code == 5 and "authorization" in err.lower() and "Traceback" not in err
