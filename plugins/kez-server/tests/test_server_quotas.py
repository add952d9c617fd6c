"""Storage quotas: per identity (links and bytes of its stored chain, 403 `identity_quota`)
and per client address (new links and bytes stored per hour, 429 `client_quota` with
Retry-After). A refused request stores nothing; what was stored before stays."""

from __future__ import annotations

import httpx
import pytest
from kez_server.quotas import ClientQuota
from kez_server.testing import running_server
from server_helpers import NDJSON, assert_error, body, chain, extend, identity_path


def push(http, signer, lines, **headers):
    return http.post(
        identity_path(signer.key_id), content=body(lines), headers={**NDJSON, **headers}
    )


def test_identity_link_quota():
    with (
        running_server(identity_max_links=5) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        signer, builder = chain(3)
        assert push(http, signer, builder.lines).status_code == 200
        for _ in range(3):
            extend(builder, signer)
        data = assert_error(push(http, signer, builder.lines), 403, "identity_quota")
        assert data["quota"] == "links" and data["limit"] == 5
        assert "5" in data["message"]
        # nothing of the refused request was stored
        assert http.get(identity_path(signer.key_id)).content == body(builder.lines[:3])
        # up to the quota is fine, re-pushing a full chain too
        assert push(http, signer, builder.lines[:5]).json()["head_seqno"] == 5
        assert push(http, signer, builder.lines[:5]).json()["appended"] == 0
        assert_error(push(http, signer, builder.lines), 403, "identity_quota")
        # other identities have their own quota
        other, others = chain(5)
        assert push(http, other, others.lines).status_code == 200


def test_identity_byte_quota():
    signer, builder = chain(4)
    three = len(body(builder.lines[:3]))  # the stored bytes: canonical lines without newlines
    with (
        running_server(identity_max_bytes=three) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        assert push(http, signer, builder.lines[:2]).status_code == 200
        data = assert_error(push(http, signer, builder.lines), 403, "identity_quota")
        assert data["quota"] == "bytes" and data["limit"] == three
        assert push(http, signer, builder.lines[:3]).json()["head_seqno"] == 3
        assert_error(push(http, signer, builder.lines), 403, "identity_quota")
        assert http.get(identity_path(signer.key_id)).content == body(builder.lines[:3])


def test_identity_byte_quota_after_a_restart(tmp_path):
    """The stored size is read from the database when the server has not seen the chain."""
    signer, builder = chain(4)
    three = len(body(builder.lines[:3]))
    db = str(tmp_path / "kez.db")
    with running_server(db=db) as server, httpx.Client(base_url=server.url) as http:
        assert push(http, signer, builder.lines[:3]).status_code == 200
    with (
        running_server(db=db, identity_max_bytes=three) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        assert_error(push(http, signer, builder.lines), 403, "identity_quota")


def test_client_byte_quota_fresh_identities():
    """The issue's case: big chains from fresh identities, one client address, in seconds."""
    chains = [chain(20) for _ in range(3)]
    size = len(body(chains[0][1].lines))
    with (
        running_server(client_bytes_per_hour=int(size * 2.5)) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        for signer, builder in chains[:2]:
            assert push(http, signer, builder.lines).status_code == 200
        signer, builder = chains[2]
        refused = push(http, signer, builder.lines)
        data = assert_error(refused, 429, "client_quota")
        assert (
            data["quota"] == "bytes" and int(refused.headers["retry-after"]) == data["retry_after"]
        )
        assert 1 <= data["retry_after"] <= 3600
        assert_error(http.get(identity_path(signer.key_id)), 404)  # nothing stored
        # what was stored before is all there; re-pushing it costs nothing
        for signer, builder in chains[:2]:
            assert http.get(identity_path(signer.key_id)).content == body(builder.lines)
            assert push(http, signer, builder.lines).json()["appended"] == 0
        # another client address has its own allowance
        signer, builder = chains[2]
        assert (
            push(http, signer, builder.lines, **{"x-forwarded-for": "203.0.113.5"}).status_code
            == 200
        )


def test_client_link_quota():
    with (
        running_server(client_links_per_hour=5) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        signer, builder = chain(4)
        assert push(http, signer, builder.lines).status_code == 200
        other, others = chain(2)
        data = assert_error(push(http, other, others.lines), 429, "client_quota")
        assert data["quota"] == "links" and data["limit"] == 5
        one, ones = chain(1)
        assert push(http, one, ones.lines).status_code == 200


def test_request_larger_than_the_hourly_allowance():
    signer, builder = chain(6)
    with (
        running_server(client_links_per_hour=5) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        data = assert_error(push(http, signer, builder.lines), 413, "too_large")
        assert data["quota"] == "links" and data["limit"] == 5
        assert push(http, signer, builder.lines[:5]).status_code == 200


def test_quotas_are_on_by_default():
    with running_server() as server:
        settings = server.settings
    assert settings.identity_max_links == 100_000
    assert settings.identity_max_bytes == 64 * 1024 * 1024
    assert settings.client_bytes_per_hour == 16 * 1024 * 1024
    assert settings.client_links_per_hour == 50_000


# ------------------------------------------------------------- the buckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_client_quota_refills_over_the_hour_and_refunds():
    clock = Clock()
    quota = ClientQuota(bytes_per_hour=3600, links_per_hour=0, clock=clock)
    quota.charge("a", 1, 3000)
    with pytest.raises(Exception) as caught:
        quota.charge("a", 1, 1000)
    assert caught.value.status == 429 and caught.value.extra["retry_after"] == 400
    clock.now += 400
    quota.charge("a", 1, 1000)
    quota.refund("a", 1, 1000)  # an insert that lost a race stored nothing
    quota.charge("a", 1, 1000)
    quota.charge("b", 1, 3600)  # per address
    unlimited = ClientQuota(bytes_per_hour=0, links_per_hour=0, clock=clock)
    unlimited.charge("a", 10**6, 10**12)
