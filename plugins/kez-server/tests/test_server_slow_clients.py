"""Slow and vanishing clients: header and body timeouts (408), the connection cap (503 `busy`),
and a client that disconnects mid-body (a normal event, not an internal error).

Every slow client here is a raw socket on 127.0.0.1 that this test opens, so
their number and lifetime are bounded; the servers use timeouts of a fraction
of a second so that each test ends in a few seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from kez_server.testing import running_server
from server_helpers import assert_error, chain, identity_path


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


@contextlib.contextmanager
def raw(url: str, timeout: float = 5) -> Iterator[socket.socket]:
    sock = socket.create_connection(_address(url), timeout=timeout)
    try:
        yield sock
    finally:
        sock.close()


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read until the server closes the connection; (status, headers, body). Status 0: closed silently."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    if not data:
        return 0, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def typed(status: int, body: bytes, code: str) -> dict:
    data = json.loads(body)
    assert data["error"] == code and data["message"], data
    return data


class Records(logging.Handler):
    """Every record of the server's loggers (uvicorn's do not reach the root logger)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_log() -> Iterator[Records]:
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("kez_server", "uvicorn.error", "uvicorn")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
    logging.getLogger("kez_server").setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


# ------------------------------------------------------------ header timeout


def test_slow_headers_get_408_and_the_connection_closes():
    with running_server(header_timeout=0.5) as server:
        with raw(server.url) as sock:
            started = time.monotonic()
            sock.sendall(b"GET /v1/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            status, headers, body = read_answer(sock)
            waited = time.monotonic() - started
        assert status == 408 and headers["connection"] == "close"
        typed(status, body, "header_timeout")
        assert 0.4 < waited < 3
        # a client that connects and says nothing is closed without an answer
        with raw(server.url) as sock:
            assert read_answer(sock)[0] == 0
        # a normal client is not affected, also on a kept-alive connection after a pause
        with httpx.Client(base_url=server.url) as http:
            assert http.get("/v1/healthz").status_code == 200
            time.sleep(0.7)
            assert http.get("/v1/healthz").status_code == 200


def test_slowloris_dribble_is_cut_at_the_deadline():
    """A byte every 0.1 s keeps an idle timer alive forever; the header deadline is for the whole head."""
    with running_server(header_timeout=0.6) as server, raw(server.url) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /v1/healthz HTTP/1.1\r\n")
        with contextlib.suppress(OSError):
            for _ in range(40):
                sock.sendall(b"X-A: b\r\n")
                time.sleep(0.1)
        status, _headers, body = read_answer(sock)
        assert status == 408
        typed(status, body, "header_timeout")
        assert time.monotonic() - started < 3


# -------------------------------------------------------------- body timeout


def test_slow_body_gets_408():
    with running_server(body_timeout=0.6) as server:
        signer, builder = chain(1)
        path = identity_path(signer.key_id)
        with raw(server.url) as sock:
            line = builder.lines[0]
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/x-ndjson\r\nContent-Length: {len(line)}\r\n\r\n".encode()
                + line[:10]
            )
            started = time.monotonic()
            status, headers, body = read_answer(sock)
        assert status == 408 and headers["connection"] == "close"
        typed(status, body, "body_timeout")
        assert time.monotonic() - started < 3
        with httpx.Client(base_url=server.url) as http:
            assert_error(http.get(path), 404)  # nothing stored
            # a body that arrives in time is stored
            response = http.post(
                path, content=line, headers={"content-type": "application/x-ndjson"}
            )
            assert response.status_code == 200


# ----------------------------------------------------------- connection cap


def test_connection_cap_answers_503_and_health_recovers():
    with running_server(max_connections=6, header_timeout=1.5) as server:
        slow: list[socket.socket] = []
        try:
            # five slow clients hold connections: under the cap, health still answers
            for _ in range(5):
                sock = socket.create_connection(_address(server.url), timeout=5)
                sock.sendall(b"GET /v1/healthz HTTP/1.1\r\n")
                slow.append(sock)
            time.sleep(0.1)
            assert httpx.get(server.url + "/v1/healthz").status_code == 200
            # one more slow client reaches the cap: new connections get 503 at once
            sock = socket.create_connection(_address(server.url), timeout=5)
            sock.sendall(b"GET /v1/healthz HTTP/1.1\r\n")
            slow.append(sock)
            time.sleep(0.1)
            started = time.monotonic()
            response = httpx.get(server.url + "/v1/healthz")
            assert time.monotonic() - started < 1
            data = assert_error(response, 503, "busy")
            assert response.headers["retry-after"] and data["limit"] == 6
            # the slow ones run out of time; then everyone is served again
            for sock in slow:
                assert read_answer(sock)[0] == 408
        finally:
            for sock in slow:
                sock.close()
        deadline = time.monotonic() + 5
        while httpx.get(server.url + "/v1/healthz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)


# ---------------------------------------------------------------- disconnect


def test_disconnect_mid_body_is_not_an_internal_error(server_log):
    with running_server() as server:
        signer, builder = chain(1)
        path = identity_path(signer.key_id)
        with raw(server.url) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n".encode()
                + builder.lines[0][:50]
            )
            time.sleep(0.2)
        time.sleep(0.3)
        assert httpx.get(server.url + "/v1/healthz").status_code == 200
        assert httpx.get(server.url + path).status_code == 404
    errors = [r for r in server_log.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors]
    gone = [r for r in server_log.records if "disconnected" in r.getMessage()]
    assert gone and all(r.levelno <= logging.INFO for r in gone)


# ------------------------------------------------------- what is not HTTP


def test_garbage_and_huge_heads_get_typed_answers():
    with running_server() as server:
        with raw(server.url) as sock:
            sock.sendall(b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n")
            status, headers, body = read_answer(sock)
        assert status == 400 and headers["content-type"] == "application/json"
        typed(status, body, "bad_request")
        with raw(server.url) as sock:
            sock.sendall(b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\n")
            with contextlib.suppress(OSError):
                for _ in range(100):
                    sock.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")
            status, headers, body = read_answer(sock)
        assert status == 431
        typed(status, body, "header_too_large")
        assert httpx.get(server.url + "/v1/healthz").status_code == 200


def test_connection_cap_stays_under_the_open_file_limit():
    import resource

    from kez_server.limits import FD_RESERVE, connection_cap

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        pytest.skip("no open-file limit here")
    assert connection_cap(10) == min(10, soft - FD_RESERVE)
    assert connection_cap(soft * 2) == soft - FD_RESERVE
    assert connection_cap(0) == soft - FD_RESERVE  # 0: as many as the limit allows
