"""`kez message open` and `kez message listen` on hostile messages, in both output modes.

Alice (a stranger to nobody: her chain is known to Bob, so her key is
checked) seals each corpus string as a message body with the real sealing
code; Bob opens it in-process. For `listen`, Bob's listener runs as a real
`kez message listen` subprocess on a real `nats-server`: every hostile
message arrives and is shown, a garbage envelope full of escapes is
refused on stderr, and the listener goes on to the last, ordinary message
(one envelope used to be enough to stop anyone's listener).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from corpus import HOSTILE, Run, check, raw_controls
from kez_cli.main import main
from kez_core.messaging import routing_id
from kez_core.protocols import ChannelContext
from kez_core.safetext import visible
from kez_transport_nats.testing import running_nats_server
from kez_transport_nats.transport import NatsTransport

NAMES = sorted(HOSTILE)
GARBAGE = "kez:e1:" + "".join(
    HOSTILE[n] for n in ("markup close", "esc clear", "c1 csi", "bidi override")
)


def _in(home, *args: str) -> int:
    old = os.environ.get("KEZ_HOME")
    os.environ["KEZ_HOME"] = str(home)
    try:
        return main(list(args))
    finally:
        os.environ["KEZ_HOME"] = old or ""


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """Alice and Bob with identities, chains and inbox keys; each holds the other's chain."""
    base = tmp_path_factory.mktemp("people")
    out = {}
    for name in ("alice", "bob"):
        home = base / name
        assert _in(home, "identity", "new", "--name", name, "--no-passphrase") == 0
        assert _in(home, "sigchain", "init") == 0
        assert _in(home, "sigchain", "add-inbox") == 0
        assert _in(home, "sigchain", "export", str(base / f"{name}.jsonl")) == 0
        out[name] = home
    assert _in(out["alice"], "sigchain", "import", str(base / "bob.jsonl")) == 0
    assert _in(out["bob"], "sigchain", "import", str(base / "alice.jsonl")) == 0
    out["bob_chain"] = base / "bob.jsonl"
    return out


def _seal(kez, people, text: str) -> tuple[Run, list[str]]:
    os.environ["KEZ_HOME"] = str(people["alice"])
    run = kez("message", "seal", "--to", str(people["bob_chain"]), "--text", text, "--json")
    check(run, json_mode=True)
    return run, [item["envelope"] for item in json.loads(run.stdout)] if run.exit_code == 0 else []


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("name", NAMES)
def test_message_open(kez, monkeypatch, people, name, json_mode):
    text = HOSTILE[name]
    monkeypatch.setenv("KEZ_HOME", str(people["alice"]))
    sealed, envelopes = _seal(kez, people, text)
    if not envelopes:
        assert sealed.exit_code == 3  # a lone surrogate cannot be signed: refused, typed
        envelopes = []
    monkeypatch.setenv("KEZ_HOME", str(people["bob"]))
    mode = ["--json"] if json_mode else []
    run = kez("message", "open", *envelopes, GARBAGE, *mode)
    doc = check(run, json_mode=json_mode, codes=frozenset({1}))  # the garbage envelope is refused
    if json_mode and envelopes:
        assert doc[0]["body"]["text"] == text and doc[0]["sender_checked"] is True
    if not json_mode and envelopes:
        lines = run.stdout.splitlines()
        assert lines[0].startswith(
            "✓ "
        )  # checked sender, and nothing in the body can rewrite this line
        if len(text) < 100 and "\t" not in text:  # (rich lays tabs out as spaces)
            assert "  " + visible(text, multiline=True).replace("\n", "\n  ") in run.stdout


@pytest.fixture(scope="module")
def nats():
    with running_nats_server() as server:
        yield server


def _listen(home, nats_url: str, count: int, json_mode: bool) -> subprocess.Popen[str]:
    env = {**os.environ, "KEZ_HOME": str(home), "KEZ_PASSPHRASE": ""}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kez_cli",
            "message",
            "listen",
            "--via",
            "nats",
            "--nats-url",
            nats_url,
            "--count",
            str(count),
            "--wait",
            "120",
            *(["--json"] if json_mode else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if b"listening on" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the listener did not start: {proc.stderr.read()!r}")


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
def test_message_listen_goes_on_after_hostile_messages(kez, monkeypatch, people, nats, json_mode):
    monkeypatch.setenv("KEZ_HOME", str(people["bob"]))
    inbox = json.loads(kez("sigchain", "show", "--json").stdout)["inbox_keys"][0]["key"]
    bodies = []
    envelopes = []
    for name in NAMES:
        _, sealed = _seal(kez, people, HOSTILE[name])
        if sealed:
            bodies.append(HOSTILE[name])
            envelopes += sealed
    _, last = _seal(kez, people, "the end")
    listener = _listen(people["bob"], nats.url, len(bodies) + 1, json_mode)
    ctx = ChannelContext(options=nats.ctx_options(), timeout=10)

    async def deliver() -> None:
        transport = NatsTransport()
        route = routing_id(inbox)
        await transport.send(
            route, GARBAGE.encode("utf-8", "surrogatepass"), ctx
        )  # refused, on stderr
        for envelope in [*envelopes, *last]:
            await transport.send(route, envelope.encode("ascii"), ctx)

    try:
        asyncio.run(deliver())
        raw_out, raw_err = listener.communicate(timeout=120)
    finally:
        listener.kill()
    out, err = (
        raw_out.decode("utf-8"),
        raw_err.decode("utf-8"),
    )  # strict: no lone surrogate reached stdout
    assert listener.returncode == 0, err
    assert "Traceback" not in out + err
    assert not raw_controls(out) and not raw_controls(err)
    assert "refused an envelope" in err
    if json_mode:
        received = [
            d for d in map(json.loads, out.splitlines()) if d["event"] in ("message", "ack")
        ]  # JSON Lines: one document a line
        assert [m["body"]["text"] for m in received] == [*bodies, "the end"]
    else:
        assert out.rstrip().endswith("  the end")
        assert sum(line.startswith("✓ ed25519:") for line in out.splitlines()) == len(bodies) + 1
