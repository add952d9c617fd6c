"""`kez-server nats-config`, `--nats URL` and `--with-nats` as real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import httpx
from kez_core.tls import ssl_context  # one CA bundle load per process
from kez_server.cli import main as server_main
from kez_transport_nats.testing import free_port, running_nats_server
from nats_callout_helpers import ENVELOPE, Person, refused, roundtrip

PY = sys.executable


def start(args: list[str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEZ_SERVER_")}
    return subprocess.Popen(
        [PY, "-m", "kez_server", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_healthy(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(url + "/v1/healthz", timeout=2, verify=ssl_context()).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not come up")


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    try:
        _out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return proc.returncode, err


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_with_nats_runs_a_whole_chat_home_from_one_command(tmp_path):
    http_port, nats_port = free_port(), free_port()
    proc = start(
        [
            "--db", str(tmp_path / "kez.db"), "--server", "example.org",
            "--bind", f"127.0.0.1:{http_port}",
            "--with-nats", "--nats-listen", f"127.0.0.1:{nats_port}",
        ]
    )  # fmt: skip
    url = f"http://127.0.0.1:{http_port}"
    try:
        wait_healthy(proc, url)
        home = (SimpleNamespace(url=url), SimpleNamespace(url=f"nats://127.0.0.1:{nats_port}"))
        alice, bob = Person(home), Person(home)
        assert roundtrip(alice.ctx(), bob.ctx(), alice.inboxes[0]) == ENVELOPE
        refused(_stranger_ctx(home))
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert f"NATS auth callout on nats://127.0.0.1:{nats_port}" in err
    assert (tmp_path / "kez.db.nats.conf").is_file()
    assert not listening(nats_port)  # nats-server stopped with the server


def _stranger_ctx(home):
    from kez_core.keys import Signer
    from kez_core.protocols import ChannelContext

    return ChannelContext(
        options={"nats_url": (home[1].url,), "signer": Signer.generate("ed25519")}, timeout=5
    )


def test_nats_config_then_nats_url(tmp_path, capsys):
    db, conf = str(tmp_path / "kez.db"), tmp_path / "nats.conf"
    assert (
        server_main(["nats-config", "--db", db, "--listen", "127.0.0.1:4222", "--out", str(conf)])
        == 0
    )
    assert "auth callout issuer A" in capsys.readouterr().err
    with running_nats_server(config=conf.read_text()) as nats:
        http_port = free_port()
        proc = start(
            [
                "--db",
                db,
                "--server",
                "example.org",
                "--bind",
                f"127.0.0.1:{http_port}",
                "--nats",
                nats.url,
            ]
        )
        url = f"http://127.0.0.1:{http_port}"
        try:
            wait_healthy(proc, url)
            home = (SimpleNamespace(url=url), nats)
            carol, bob = Person(home, alg="nostr"), Person(home)
            assert roundtrip(carol.ctx(), bob.ctx(), carol.inboxes[0]) == ENVELOPE
        finally:
            code, err = stop(proc)
        assert code == 0, err


def test_nats_config_errors_are_typed(tmp_path, capsys):
    assert (
        server_main(["nats-config", "--db", "postgresql://u:pw@h/db", "--out", str(tmp_path / "c")])
        == 2
    )
    err = capsys.readouterr().err
    assert "--nats-keys" in err and "pw" not in err and "Traceback" not in err
    assert server_main(["nats-config", "--db", str(tmp_path / "k.db")]) == 2  # --out is required
    assert server_main(["nats-config", "--help"]) == 0
    assert "auth callout" in capsys.readouterr().out


def test_a_callout_that_cannot_reach_nats_is_an_error_not_a_hang(tmp_path, capsys, monkeypatch):
    # Nothing listens at the URL, so any wait for the first connection ends the same way:
    # one second instead of the command's 10 s is enough to see the error (and not a hang).
    from kez_server import nats_run

    monkeypatch.setattr(nats_run, "CONNECT_TIMEOUT", 1.0)
    code = server_main(
        [
            "--db", str(tmp_path / "kez.db"), "--server", "example.org",
            "--bind", f"127.0.0.1:{free_port()}", "--nats", f"nats://127.0.0.1:{free_port()}",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 5, err
    assert "could not connect" in err and "Traceback" not in err


def test_with_nats_on_a_busy_port_says_so(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code = server_main(
            [
                "--db", str(tmp_path / "kez.db"), "--server", "example.org",
                "--bind", f"127.0.0.1:{free_port()}",
                "--with-nats", "--nats-listen", f"127.0.0.1:{port}",
            ]
        )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 4, err
    assert "nats-server exited" in err and "--nats-listen" in err
