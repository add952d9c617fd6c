"""Property tests of the inbox endpoints: garbage bodies, paths, cursors and headers never get a 500.

The answer is always below 500 and, for an error, a typed JSON body. Runs on
SQLite and on PostgreSQL (NUL bytes, huge integers, odd key ids).
"""

from __future__ import annotations

import json
import string
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inbox_helpers import envelope, register
from kez_core.keys import Signer
from kez_core.messaging.inbox_auth import sign_inbox_request
from test_server_props import check, json_values

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def owner(http):
    signer, handle = register(http)
    http.post("/v1/messages", json={"to": handle, "envelope": envelope()})
    return signer, handle


@st.composite
def message_bodies(draw, handle):
    body = {"to": handle, "envelope": envelope()}
    key = draw(st.sampled_from(["to", "envelope", "route", "extra"]))
    mutation = draw(st.sampled_from(["drop", "junk", "damage"]))
    if mutation == "drop":
        body.pop(key, None)
    elif mutation == "junk":
        body[key] = draw(json_values)
    elif isinstance(body.get(key), str):
        text = body[key]
        i = draw(st.integers(0, len(text)))
        body[key] = text[:i] + draw(st.text(max_size=5)) + text[i + draw(st.integers(0, 3)) :]
    return json.dumps(body).encode()


@SETTINGS
@given(data=st.data())
def test_post_messages_never_500(http, owner, data):
    body = data.draw(
        st.one_of(
            st.binary(max_size=400),
            json_values.map(lambda v: json.dumps(v).encode()),
            message_bodies(owner[1]),
        )
    )
    check(http.post("/v1/messages", content=body, headers={"content-type": "application/json"}))


cursors = st.one_of(
    st.integers(-5, 2**70).map(str),
    st.text(max_size=20),
    st.sampled_from(["", "0x1", "1e3", "99999999999999999999"]),
)


@SETTINGS
@given(
    handle=st.one_of(st.text(max_size=40), st.just("PLACEHOLDER")),
    since=cursors,
    limit=cursors,
    header=st.one_of(
        st.none(), st.text(alphabet=string.printable, max_size=200), st.just("SIGNED")
    ),
    kind=st.sampled_from(["", "/live"]),
    method=st.sampled_from(["GET", "DELETE"]),
)
def test_inbox_reads_never_500(http, owner, handle, since, limit, header, kind, method):
    signer, real = owner
    handle = real if handle == "PLACEHOLDER" else handle
    path = f"/v1/inbox/{quote(handle, safe='')}{kind}"
    if header == "SIGNED":
        bound = ("through=" if method == "DELETE" else "since=") + since
        header = sign_inbox_request(signer, method, f"/v1/inbox/{handle}{kind}", bound)
    headers = {} if header is None or not header.isprintable() else {"x-kez-auth": header.strip()}
    name = "through" if method == "DELETE" else "since"
    if kind and method == "GET":
        with http.stream("GET", path, params={name: since}, headers=headers) as response:
            if response.status_code == 200:
                return  # a live stream opened: fine
            response.read()
            check(response)
        return
    check(http.request(method, path, params={name: since, "limit": limit}, headers=headers))


@SETTINGS
@given(
    key=st.one_of(
        st.text(max_size=90),
        st.text(alphabet=string.hexdigits + ":", max_size=80),
        st.sampled_from(["ed25519:", "nostr:" + "f" * 64, "npub1x", Signer.generate().key_id]),
    )
)
def test_by_primary_never_500(http, key):
    check(http.get("/v1/by-primary/" + quote(key, safe="")))
