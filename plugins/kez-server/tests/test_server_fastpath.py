"""The inbox fast path (fastpath.py) answers as the routed endpoints answer.

Two real servers get the same requests, one with `app.fast` and one without
(every request through the middleware and the router); their answers must
be the same, up to the values that differ between two servers (seq,
received_at). Covers the requests the fast path answers, and the ones it
must leave to the router (odd queries, media types, sizes, chunked bodies).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from inbox_helpers import envelope
from kez_core.keys import Signer
from kez_core.messaging.inbox_auth import sign_inbox_request
from kez_server.testing import running_server
from server_helpers import registration

SHOWN = ("content-type", "cache-control", "retry-after", "www-authenticate", "connection")


def _shape(answer: httpx.Response) -> tuple[Any, ...]:
    try:
        data: Any = answer.json()
    except ValueError:
        data = answer.text
    if isinstance(data, dict):
        data = {k: ("<n>" if k in ("seq", "next") else v) for k, v in data.items()}
        if isinstance(data.get("messages"), list):
            data["messages"] = [
                {k: v for k, v in m.items() if k == "envelope"} for m in data["messages"]
            ]
    headers = {k: answer.headers.get(k) for k in SHOWN if answer.headers.get(k) is not None}
    return answer.status_code, data, headers


@pytest.fixture
def pair() -> Iterator[tuple[httpx.Client, httpx.Client, Any, Any]]:
    """(fast client, routed client, fast app, routed app), both with small limits (16)."""
    with ExitStack() as stack:
        servers = [
            stack.enter_context(
                running_server(message_burst=16, message_rate=0.01, read_burst=16, read_rate=0.01)
            )
            for _ in range(2)
        ]
        servers[1].app.fast = None
        clients = [stack.enter_context(httpx.Client(base_url=s.url, timeout=30)) for s in servers]
        yield clients[0], clients[1], servers[0].app, servers[1].app


def test_the_fast_path_answers_as_the_router(pair):
    fast, routed, fast_app, _ = pair
    real, handled = fast_app.fast, []
    assert real is not None

    async def counting(scope: Any, receive: Any, send: Any) -> bool:
        handled.append(await real(scope, receive, send))
        return handled[-1]

    fast_app.fast = counting
    signer, other = Signer.generate(), Signer.generate()
    reg = registration(signer, "alice")
    for client in (fast, routed):
        assert client.post("/v1/register", json=reg).status_code == 201
    text = envelope()
    path = "/v1/inbox/alice"
    now = int(time.time())
    good = sign_inbox_request(signer, "GET", path, "since=0", now)

    def both(method: str, url: str, **kw: Any) -> tuple[Any, ...]:
        answers = [client.request(method, url, **kw) for client in (fast, routed)]
        shapes = [_shape(a) for a in answers]
        assert shapes[0] == shapes[1], (method, url, shapes)
        return shapes[0]

    # POST: stored, refused for its body, then over the message limit
    assert both("POST", "/v1/messages", json={"to": "alice", "envelope": text})[0] == 201
    posts = [
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        {"content": b"[1]", "headers": {"content-type": "application/json"}},
        {"json": {"to": "alice", "envelope": "kez:e1:AAAA"}},
        {"json": {"to": "nobody", "envelope": text}},
        {"json": {"to": "alice", "envelope": text, "route": "XYZ"}},
        {"content": b'{"to": "alice", "envelope": "' + text.encode() + b'"}'},  # no content-type
        {"content": b"{}", "headers": {"content-type": "text/plain"}},  # 415, routed
        {
            "content": b"x" * (256 * 1024 + 1),
            "headers": {"content-type": "application/json"},
        },  # 413
    ]
    statuses = [both("POST", "/v1/messages", **kw)[0] for kw in posts]
    assert statuses == [400, 400, 400, 404, 400, 201, 415, 413]

    def chunked() -> Iterator[bytes]:  # no content-length: the routed way on both
        yield b'{"to": "alice", '
        yield b'"envelope": "' + text.encode() + b'"}'

    for client in (fast, routed):
        answer = client.post(
            "/v1/messages", content=chunked(), headers={"content-type": "application/json"}
        )
        assert answer.status_code == 201, answer.text
    for _ in range(20):
        limited = both("POST", "/v1/messages", json={"to": "alice", "envelope": text})
        if limited[0] == 429:
            break
    assert limited[0] == 429 and limited[2]["retry-after"]

    # GET: read, refused (every 401 reason), odd queries, then over the read limit (12 here)
    reads = [
        ("/v1/inbox/alice?since=0", {"x-kez-auth": good}),
        ("/v1/inbox/alice", {"x-kez-auth": good}),
        ("/v1/inbox/alice?since=0&limit=1", {"x-kez-auth": good}),
        ("/v1/inbox/alice?since=0", {}),
        ("/v1/inbox/alice?since=0", {"x-kez-auth": "garbage"}),
        ("/v1/inbox/alice?since=1", {"x-kez-auth": good}),  # signed for another cursor
        (
            "/v1/inbox/alice?since=0",
            {"x-kez-auth": sign_inbox_request(other, "GET", path, "since=0", now)},
        ),
        (
            "/v1/inbox/alice?since=0",
            {"x-kez-auth": sign_inbox_request(signer, "GET", path, "since=0", now - 61)},
        ),
        ("/v1/inbox/nobody?since=0", {"x-kez-auth": good}),
        ("/v1/inbox/alice?since=abc", {"x-kez-auth": good}),  # routed: 400
        ("/v1/inbox/alice?since=0&limit=0", {"x-kez-auth": good}),  # routed: 400
    ]
    got = [both("GET", url, headers=headers)[0] for url, headers in reads]
    assert got == [200, 200, 200, 401, 401, 401, 401, 401, 404, 400, 400]
    assert handled.count(True) >= 20  # most of them were the fast path's
    for _ in range(20):
        limited = both("GET", "/v1/inbox/alice?since=0", headers={"x-kez-auth": good})
        if limited[0] == 429:
            break
    assert limited[0] == 429 and limited[2]["retry-after"]


def test_a_body_that_never_ends_is_408_on_the_fast_path():
    """BodyDeadline's rule holds on the fast path: the whole body within body_timeout."""
    import socket

    with running_server(message_burst=0, body_timeout=0.5) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b'content-length: 100\r\n\r\n{"to":'
            )
            data = b""
            while b"\r\n\r\n" not in data or b"}" not in data:
                more = sock.recv(4096)
                if not more:
                    break
                data += more
        assert data.startswith(b"HTTP/1.1 408"), data
        assert b"body_timeout" in data
