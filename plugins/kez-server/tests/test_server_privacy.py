"""Seeds 000: logs never hold a plaintext handle, routing id or client IP at INFO (uvicorn's
access log included); DEBUG shows a hash salted per process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
from inbox_helpers import envelope, fetch, register
from kez_server.privacy import AccessLogFilter, pseudonym, redact_path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_and_talk(tmp_path, level: str) -> tuple[str, str, list[str]]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kez_server", "--server", "example.org", "--bind", f"127.0.0.1:{port}",
         "--db", str(tmp_path / f"{level}.db"), "--log-level", level, "--write-burst", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
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
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    # the bind address (ours, not a client's) is printed at start
    return handle, route, [ln for ln in out.splitlines() if "listening on" not in ln and "running on" not in ln]


def test_info_logs_name_no_handle_route_or_address(tmp_path):
    handle, route, lines = _serve_and_talk(tmp_path, "info")
    text = "\n".join(lines)
    assert "/v1/messages" in text and "/v1/inbox/" in text, text  # the access log is on
    assert handle not in text and route not in text and "127.0.0.1" not in text, text


def test_debug_logs_use_a_salted_hash(tmp_path):
    handle, route, lines = _serve_and_talk(tmp_path, "debug")
    text = "\n".join(lines)
    assert handle not in text and "127.0.0.1" not in text and route not in text, text
    assert "/v1/inbox/h:" in text, text


def test_the_hash_is_salted_per_process():
    assert pseudonym("alice") == pseudonym("alice") != pseudonym("bob")
    other = subprocess.run(
        [sys.executable, "-c", "from kez_server.privacy import pseudonym; print(pseudonym('alice'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert other != pseudonym("alice")


def test_redaction_of_paths():
    assert redact_path("/v1/inbox/alice/live?since=3") == "/v1/inbox/…/live"
    assert redact_path("/v1/by-primary/ed25519:ab") == "/v1/by-primary/…"
    assert redact_path("/.well-known/webfinger?resource=acct:alice@x") == "/.well-known/webfinger"
    assert redact_path("/v1/healthz") == "/v1/healthz"
    import logging

    record = logging.LogRecord("uvicorn.access", 20, "", 0, '%s - "%s %s HTTP/%s" %d',
                               ("10.1.2.3:5555", "GET", "/v1/u/alice", "1.1", 200), None)
    AccessLogFilter().filter(record)
    assert "alice" not in record.getMessage() and "10.1.2.3" not in record.getMessage()
