"""`kez-server` and `kez server` as processes: flags, environment, first run, restart, errors."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
from kez_core.tls import ssl_context  # one CA bundle load per process
import pytest
from kez_cli.main import main as kez_main
from kez_core.keys import Signer
from kez_server.cli import main as server_main
from server_helpers import head_revision, new_handle, registration

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(
    args: list[str], env: dict[str, str] | None = None, *, kez: bool = False
) -> subprocess.Popen:
    cmd = [PY, "-m", "kez_cli", "server", *args] if kez else [PY, "-m", "kez_server", *args]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KEZ_SERVER_")}
    return subprocess.Popen(
        cmd, env={**clean, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_healthy(proc: subprocess.Popen, url: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {proc.stderr.read()}")
        try:
            response = httpx.get(url + "/v1/healthz", timeout=2, verify=ssl_context())
            if response.status_code == 200:
                return response.json()
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


def test_first_run_creates_the_schema_and_restart_keeps_data(tmp_path):
    db = tmp_path / "sub" / "kez.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(["--bind", f"127.0.0.1:{port}", "--db", str(db), "--server", "example.org"])
    try:
        health = wait_healthy(proc, url)
        assert health["server"] == "example.org" and health["db"] == "ok"
        signer, handle = Signer.generate("ed25519"), new_handle()
        assert (
            httpx.post(url + "/v1/register", json=registration(signer, handle)).status_code == 201
        )
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert "kez-server 0.1.0" in err and f"schema {head_revision()}" in err
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM kez_alembic_version").fetchall() == [
            (head_revision(),)
        ]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "kez_links",
        "kez_forks",
        "kez_handles",
        "kez_messages",
        "kez_push_subscriptions",
        "kez_alembic_version",
    } <= tables
    assert (db.parent / "kez.db.vapid.pem").stat().st_mode & 0o777 == 0o600  # made on first run
    # again, through `kez server` and the environment: the data is still there
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "KEZ_SERVER_BIND": f"127.0.0.1:{port}",
        "KEZ_SERVER_DB": str(db),
        "KEZ_SERVER_NAME": "example.org",
        "KEZ_SERVER_PUBLIC_URL": "https://sig.example.org/",
    }
    proc = start([], env, kez=True)
    try:
        wait_healthy(proc, url)
        found = httpx.get(url + f"/v1/u/{handle}").json()
        assert found["primary"] == signer.key_id
        assert (
            found["sigchain_url"]
            == f"https://sig.example.org/v1/sigchains/ed25519/{signer.key_id[8:]}"
        )
    finally:
        code, err = stop(proc)
    assert code == 0, err


def test_flags_win_over_environment(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"KEZ_SERVER_NAME": "env.example", "KEZ_SERVER_BIND": "127.0.0.1:1"}
    proc = start(
        ["--bind", f"127.0.0.1:{port}", "--db", str(tmp_path / "k.db"), "--server", "flag.example"],
        env,
    )
    try:
        assert wait_healthy(proc, url)["server"] == "flag.example"
    finally:
        stop(proc)


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--db", "x.db"], 2, "no server name"),
        (["--server", "example.org", "--bind", "nope"], 2, "not HOST:PORT"),
        (["--server", "example.org", "--bind", "127.0.0.1:99999"], 2, "out of range"),
        (["--server", "not a domain!"], 2, "not a domain name"),
        (["--server", "example.org", "--db", "mysql://x/y"], 2, "unsupported database URL"),
        (["--server", "example.org", "--public-url", "ftp://x"], 2, "not an http(s) base URL"),
        (["--server", "example.org", "--write-burst", "-1"], 2, "must be 0 or more"),
        (["--server", "example.org", "--write-burst", "many"], 2, "integer"),
        (["--server", "example.org", "--header-timeout", "-1"], 2, "must be 0 or more"),
        (["--server", "example.org", "--client-bytes-per-hour", "-5"], 2, "must be 0 or more"),
        (["--server", "example.org", "--bind", "0.0.0.0:7878"], 2, "needs --public-url"),
        (["--server", "example.org", "--vapid-subject", "admin"], 2, "neither a mailto:"),
        (["--server", "example.org", "--push-allow", "a b/c"], 2, "is not HOST or HOST:PORT"),
        (["--server", "example.org", "--push-allow", "x:99999"], 2, "port out of range"),
        (["--server", "example.org", "--nostr-relay", "https://relay.example"], 2, "nostr relay"),
    ],
)
def test_config_errors(capsys, monkeypatch, tmp_path, args, code, text):
    for var in [v for v in os.environ if v.startswith("KEZ_SERVER_")]:
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    assert server_main(args) == code
    out, err = capsys.readouterr()
    assert text in out + err
    assert "Traceback" not in out + err


def test_unopenable_database(capsys, tmp_path):
    (tmp_path / "dir.db").mkdir()
    assert (
        server_main(
            ["--server", "example.org", "--db", str(tmp_path / "dir.db"), "--bind", "127.0.0.1:0"]
        )
        == 4
    )
    err = capsys.readouterr().err
    assert "cannot open the database" in err and "Traceback" not in err


def test_unreadable_vapid_key(capsys, tmp_path):
    (tmp_path / "vapid.pem").write_text("-----BEGIN PRIVATE KEY-----\nnope\n")
    args = ["--server", "example.org", "--db", str(tmp_path / "k.db"), "--bind", "127.0.0.1:0"]
    assert server_main([*args, "--vapid-key", str(tmp_path / "vapid.pem")]) == 4
    err = capsys.readouterr().err
    assert "is not an unencrypted PEM private key" in err and "Traceback" not in err


def test_version_and_help(capsys, monkeypatch):
    monkeypatch.setenv(
        "COLUMNS", "250"
    )  # every flag's variable on one line, whatever the columns' widths
    assert server_main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "kez-server 0.1.0"
    assert server_main(["--help"]) == 0
    out = capsys.readouterr().out
    for flag, env in [
        ("--bind", "KEZ_SERVER_BIND"),
        ("--db", "KEZ_SERVER_DB"),
        ("--server", "KEZ_SERVER_NAME"),
        ("--public-url", "KEZ_SERVER_PUBLIC_URL"),
        ("--write-burst", "KEZ_SERVER_WRITE_BURST"),
        ("--header-timeout", "KEZ_SERVER_HEADER_TIMEOUT"),
        ("--body-timeout", "KEZ_SERVER_BODY_TIMEOUT"),
        ("--max-connections", "KEZ_SERVER_MAX_CONNECTIONS"),
        ("--identity-max-links", "KEZ_SERVER_IDENTITY_MAX_LINKS"),
        ("--identity-max-bytes", "KEZ_SERVER_IDENTITY_MAX_BYTES"),
        ("--client-links-per-hour", "KEZ_SERVER_CLIENT_LINKS_PER_HOUR"),
        ("--client-bytes-per-hour", "KEZ_SERVER_CLIENT_BYTES_PER_HOUR"),
        ("--message-burst", "KEZ_SERVER_MESSAGE_BURST"),
        ("--message-rate", "KEZ_SERVER_MESSAGE_RATE"),
        ("--nostr-relay", "KEZ_SERVER_NOSTR_RELAY"),
    ]:
        assert flag in out and env in out


def test_kez_server_is_a_plugin_command(capsys):
    assert kez_main(["--help"]) == 0
    assert "server" in capsys.readouterr().out
    assert kez_main(["server", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--max-chain-body" in out and "KEZ_SERVER_MAX_CHAIN_BODY" in out


def test_command_module_is_light():
    # kez_server.cli is what `kez server` imports (its `command.<name>` entry point)
    code = (
        "import sys\n"
        "import kez_server.cli\n"
        "heavy = {'starlette', 'sqlalchemy', 'uvicorn', 'alembic', 'psycopg', 'httpx'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_uvicorn_factory_from_environment(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEZ_SERVER_")}
    env.update(KEZ_SERVER_DB=str(tmp_path / "f.db"), KEZ_SERVER_NAME="factory.example")
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "uvicorn",
            "--factory",
            "kez_server.app:create_app_from_env",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_healthy(proc, url)["server"] == "factory.example"
    finally:
        stop(proc)
    assert Path(tmp_path / "f.db").exists()


def test_database_trouble_is_503_not_500(tmp_path):
    """A database that stops answering gives 503 with Retry-After (a server condition, typed)."""
    from kez_server.testing import running_server

    with (
        running_server(db=str(tmp_path / "gone.db")) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        assert http.get("/v1/healthz").status_code == 200
        with server.store.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE kez_handles")
        response = http.get("/v1/u/alice")
        assert response.status_code == 503 and response.json()["error"] == "unavailable"
        assert response.headers["retry-after"] == "5"
        envelope = registration(Signer.generate("ed25519"), new_handle())
        assert http.post("/v1/register", json=envelope).status_code == 503


def test_the_command_serves_with_the_limits(tmp_path):
    """The deadlines and the cap are uvicorn protocol options: the command must pass them."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(
        ["--bind", f"127.0.0.1:{port}", "--db", str(tmp_path / "k.db"), "--server", "example.org"],
        {"KEZ_SERVER_HEADER_TIMEOUT": "0.5"},
    )
    try:
        wait_healthy(proc, url)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            started = time.monotonic()
            sock.sendall(b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 ") and b"header_timeout" in answer
        assert time.monotonic() - started < 3
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_command_reads_the_message_limit(tmp_path, how):
    """--message-burst/--message-rate (or their variables) reach the inbox's per-address limit."""
    from inbox_helpers import post, register

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        "--bind",
        f"127.0.0.1:{port}",
        "--db",
        str(tmp_path / "k.db"),
        "--server",
        "example.org",
    ]
    env = {}
    if how == "flag":
        args += ["--message-burst", "2", "--message-rate", "0.001"]
    else:
        env = {"KEZ_SERVER_MESSAGE_BURST": "2", "KEZ_SERVER_MESSAGE_RATE": "0.001"}
    proc = start(args, env)
    try:
        wait_healthy(proc, url)
        with httpx.Client(base_url=url) as client:
            _, handle = register(client, server="example.org")
            codes = [post(client, handle).status_code for _ in range(3)]
        assert codes == [201, 201, 429], codes
    finally:
        stop(proc)
