"""Seeds 000: logs never hold a plaintext handle, routing id or client IP at INFO (uvicorn's
access log included); DEBUG shows a hash salted per process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import base64
import logging
import re

import httpx
import nkeys
import pytest
from inbox_helpers import envelope, fetch, register
from kez_core.sigchain import SigchainBuilder
from kez_server import nats_jwt
from kez_server.db import Store
from kez_server.nats_callout import Authorizer
from kez_server.nats_config import load_keys
from kez_server.privacy import AccessLogFilter, pseudonym, redact_path
from server_helpers import NDJSON, body, extend, identity_path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_and_talk(tmp_path, level: str) -> tuple[str, str, list[str]]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kez_server",
            "--server",
            "example.org",
            "--bind",
            f"127.0.0.1:{port}",
            "--db",
            str(tmp_path / f"{level}.db"),
            "--log-level",
            level,
            "--write-burst",
            "0",
            "--header-timeout",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/v1/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
                time.sleep(0.1)
        with httpx.Client(base_url=url) as client:
            signer, handle = register(client)
            route = "cd" * 32
            client.post("/v1/messages", json={"to": handle, "envelope": envelope(), "route": route})
            fetch(client, signer, handle)
            client.get(f"/v1/u/{handle}")
            client.get(f"/v1/by-primary/{signer.key_id}")
            client.get(f"/v1/inbox/{handle}", params={"since": 0})  # a 401
            _chain_push_and_slow_clients(client, url, signer)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    # the bind address (ours, not a client's) is printed at start
    return (
        handle,
        route,
        [ln for ln in out.splitlines() if "listening on" not in ln and "running on" not in ln],
    )


def _chain_push_and_slow_clients(client: httpx.Client, url: str, signer) -> None:
    """A chain push, a client that stops mid-body and one too slow with its head."""
    builder = SigchainBuilder()
    extend(builder, signer)
    path = identity_path(signer.key_id)
    assert client.post(path, content=body(builder.lines), headers=NDJSON).status_code == 200
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:  # gone mid-body
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
            f"Content-Length: 100000\r\n\r\n".encode()
            + builder.lines[0][:50]
        )
        time.sleep(0.2)
    with socket.create_connection((host, int(port))) as sock:  # head too slow
        sock.sendall(f"GET /v1/u/{signer.key_id[-8:]} HTTP/1.1\r\n".encode())
        time.sleep(1.0)
    time.sleep(0.3)


def test_info_logs_name_no_handle_route_or_address(tmp_path):
    handle, route, lines = _serve_and_talk(tmp_path, "info")
    text = "\n".join(lines)
    assert "/v1/messages" in text and "/v1/inbox/" in text, text  # the access log is on
    assert handle not in text and route not in text and "127.0.0.1" not in text, text
    assert "disconnected" in text and "request head" in text, text  # the slow clients were logged
    assert signer_hex(text) == [], text


def signer_hex(text: str) -> list[str]:
    """Key ids (64 hex) in `text`: none may be logged in clear."""
    return re.findall(r"[0-9a-f]{64}", text)


def test_debug_logs_use_a_salted_hash(tmp_path):
    handle, route, lines = _serve_and_talk(tmp_path, "debug")
    text = "\n".join(lines)
    assert handle not in text and "127.0.0.1" not in text and route not in text, text
    assert "/v1/inbox/h:" in text, text
    assert signer_hex(text) == [], text
    assert "disconnected" in text and "request head" in text and "client h:" in text, text


def _refused_request(host: str = "127.0.0.1") -> tuple[bytes, str]:
    """A callout request from a real-looking nats-server for an unregistered KEZ key."""
    server = nkeys.from_seed(bytearray(nkeys.encode_seed(b"\x04" * 32, nkeys.PREFIX_BYTE_SERVER)))
    user = nkeys.from_seed(bytearray(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)))
    nonce = "n0nce"
    sig = base64.b64encode(user.sign(nonce.encode())).decode()
    claims = {
        "sub": "x",
        "nats": {
            "user_nkey": user.public_key.decode(),
            "server_id": {"id": server.public_key.decode()},
            "client_info": {"host": host, "id": 7, "nonce": nonce},
            "connect_opts": {"nkey": user.public_key.decode(), "sig": sig},
        },
    }
    return nats_jwt.encode(claims, server).encode(), user.public_key.decode()


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_a_refused_callout_logs_no_key_or_address(tmp_path, caplog, level):
    db = str(tmp_path / "kez.db")
    store = Store(db)
    store.migrate()
    try:
        request, nkey = _refused_request()
        with caplog.at_level(level, logger="kez_server"):
            assert Authorizer(store, load_keys(db)).answer(request)
    finally:
        store.close()
    text = caplog.text
    assert "refused" in text, text
    assert "127.0.0.1" not in text and nkey not in text and signer_hex(text) == [], text


def test_the_hash_is_salted_per_process():
    assert pseudonym("alice") == pseudonym("alice") != pseudonym("bob")
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "from kez_server.privacy import pseudonym; print(pseudonym('alice'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert other != pseudonym("alice")


def test_redaction_of_paths():
    assert redact_path("/v1/inbox/alice/live?since=3") == "/v1/inbox/…/live"
    assert redact_path("/v1/by-primary/ed25519:ab") == "/v1/by-primary/…"
    assert redact_path("/.well-known/webfinger?resource=acct:alice@x") == "/.well-known/webfinger"
    assert redact_path("/v1/healthz") == "/v1/healthz"
    import logging

    record = logging.LogRecord(
        "uvicorn.access",
        20,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("10.1.2.3:5555", "GET", "/v1/u/alice", "1.1", 200),
        None,
    )
    AccessLogFilter().filter(record)
    assert "alice" not in record.getMessage() and "10.1.2.3" not in record.getMessage()
