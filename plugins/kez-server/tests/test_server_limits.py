"""Abuse limits: body caps (413), per-IP token buckets (429 + Retry-After), the idle sweep."""

from __future__ import annotations

import httpx
import pytest
from kez_core.keys import Signer
from kez_server.ratelimit import TokenBuckets
from kez_server.testing import running_server
from server_helpers import (
    NDJSON,
    assert_error,
    body,
    chain,
    identity_path,
    new_handle,
    registration,
)

# --------------------------------------------------------------- body caps


@pytest.fixture(scope="module")
def capped():
    with running_server(max_chain_body=4096) as server:
        yield server


def test_registration_body_cap(capped):
    with httpx.Client(base_url=capped.url) as http:
        envelope = registration(Signer.generate("ed25519"), new_handle(), padding="x" * 70_000)
        data = assert_error(http.post("/v1/register", json=envelope), 413, "too_large")
        assert data["limit"] == 64 * 1024
        # without content-length (chunked upload): refused while reading
        chunks = (b"x" * 8192 for _ in range(10))
        assert_error(http.post("/v1/register", content=chunks), 413, "too_large")
        # just under the cap is read (and then judged on its merits)
        small = registration(Signer.generate("ed25519"), new_handle(), padding="x" * 60_000)
        assert http.post("/v1/register", json=small).status_code == 201


def test_early_413_then_the_rest_of_the_body_is_not_a_header(capped):
    """413 goes out on Content-Length before the body is read; the body bytes that still
    arrive are that request's, not a 64 KiB request head (they once drew a 431)."""
    import socket
    import time

    host, port = capped.url.split("//")[1].rsplit(":", 1)
    payload = b'{"padding": "' + b"x" * 200_000 + b'"}'
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(
            b"POST /v1/register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(payload) + payload[:1000]
        )
        first = conn.recv(4096)
        assert first.startswith(b"HTTP/1.1 413"), first[:80]
        answers = b""
        try:
            for at in range(1000, len(payload), 8192):
                conn.sendall(payload[at : at + 8192])
                time.sleep(0.001)
            conn.settimeout(0.5)
            answers = conn.recv(4096)
        except (TimeoutError, OSError):
            pass
        assert b" 431 " not in answers, answers[:80]


def test_chain_body_cap(capped):
    signer, builder = chain(8)
    assert len(body(builder.lines)) > 4096
    with httpx.Client(base_url=capped.url) as http:
        url = identity_path(signer.key_id)
        data = assert_error(
            http.post(url, content=body(builder.lines), headers=NDJSON), 413, "too_large"
        )
        assert data["limit"] == 4096
        assert_error(http.get(url), 404)  # nothing stored
        # in smaller pieces it goes through
        assert http.post(url, content=body(builder.lines[:4]), headers=NDJSON).status_code == 200
        assert (
            http.post(url, content=body(builder.lines[4:]), headers=NDJSON).json()["head_seqno"]
            == 8
        )


# -------------------------------------------------------------- rate limits


def test_write_rate_limit():
    with (
        running_server(write_burst=3, write_rate=0.05) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        signer, builder = chain(1)
        url = identity_path(signer.key_id)
        for _ in range(3):
            assert http.post(url, content=body(builder.lines), headers=NDJSON).status_code == 200
        limited = http.post(url, content=body(builder.lines), headers=NDJSON)
        data = assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) == data["retry_after"] >= 1
        assert data["retry_after"] <= 20  # one token at 0.05/s
        # registrations share the write budget
        envelope = registration(Signer.generate("ed25519"), new_handle())
        assert_error(http.post("/v1/register", json=envelope), 429, "rate_limited")
        # reads are unlimited by default, health checks always
        for _ in range(20):
            assert http.get(url).status_code == 200
        assert http.get("/v1/healthz").status_code == 200
        # another client address (forwarded by a trusted proxy: 127.0.0.1) has its own bucket
        other = {"x-forwarded-for": "203.0.113.9", **NDJSON}
        assert http.post(url, content=body(builder.lines), headers=other).status_code == 200
        # even a bad request spends a token (abuse costs the abuser)
        assert_error(
            http.post("/v1/register", content=b"junk", headers={"x-forwarded-for": "203.0.113.10"}),
            400,
        )


def test_read_rate_limit_when_enabled():
    with (
        running_server(read_burst=5, read_rate=0.1) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        statuses = [http.get(f"/v1/u/{new_handle()}").status_code for _ in range(7)]
        assert statuses == [404] * 5 + [429] * 2
        assert http.get("/v1/healthz").status_code == 200


def test_refill_after_waiting():
    with (
        running_server(write_burst=1, write_rate=20) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        url = f"/v1/sigchains/ed25519/{'a' * 64}"
        first = http.post(url, content=b"x\n", headers=NDJSON).status_code
        assert first != 429
        import time

        time.sleep(0.2)  # 20 tokens/s: refilled
        assert http.post(url, content=b"x\n", headers=NDJSON).status_code != 429


# ---------------------------------------------------------- token buckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_burst_refill_and_retry_after():
    clock = Clock()
    buckets = TokenBuckets(3, 0.5, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [None, None, None]
    assert buckets.take("a") == 2  # one token at 0.5/s
    assert buckets.take("b") is None  # per key
    clock.now += 2
    assert buckets.take("a") is None
    assert buckets.take("a") == 2
    clock.now += 100
    assert [buckets.take("a") for _ in range(3)] == [None, None, None]  # capped at burst


def test_bucket_disabled_and_no_refill():
    assert TokenBuckets(0, 0).take("a") is None
    assert not TokenBuckets(0, 5).enabled
    clock = Clock()
    once = TokenBuckets(1, 0, clock=clock)
    assert once.take("a") is None
    assert once.take("a") == 3600


def test_idle_sweep():
    clock = Clock()
    buckets = TokenBuckets(2, 1, sweep_every=60, clock=clock)
    for i in range(100):
        buckets.take(f"10.0.0.{i}")
    assert len(buckets) == 100
    clock.now += (
        1.5  # not yet refilled (1 token spent, 1/s: full after 1 s) but the sweep waits 60 s
    )
    buckets.take("busy")
    assert len(buckets) == 101
    clock.now += 60
    buckets.take("busy")
    buckets.take("busy")
    assert len(buckets) == 1  # every idle bucket was full again and is gone; "busy" is not full
    clock.now += 3
    assert buckets.sweep() == 1 and len(buckets) == 0


def test_bucket_memory_is_bounded():
    clock = Clock()
    buckets = TokenBuckets(5, 0.001, max_keys=50, clock=clock)
    for i in range(500):
        buckets.take(f"k{i}")
    assert len(buckets) <= 50
