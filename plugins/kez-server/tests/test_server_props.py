"""Property tests: malformed bodies, paths, query strings and methods at every endpoint.

Whatever arrives, the answer is below 500 and, when it is an error, a
typed JSON body `{"error": code, "message": …}`. Runs on SQLite and on
PostgreSQL (PostgreSQL refuses NUL in text, for one, where SQLite does not).
"""

from __future__ import annotations

import json
import string
from urllib.parse import quote

import httpx
from kez_core.tls import ssl_context  # one CA bundle load per process
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kez_core.keys import Signer
from server_helpers import chain, identity_path, new_handle, registration

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

KEY = Signer.generate("ed25519")
SIGNER, BUILDER = chain(2)
CHAIN_PATH = identity_path(SIGNER.key_id)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        # one known chain and handle, so lookups also reach the database
        client.post(
            CHAIN_PATH,
            content=b"".join(BUILDER.lines),
            headers={"content-type": "application/x-ndjson"},
        )
        client.post("/v1/register", json=registration(KEY, new_handle()))
        yield client


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.headers
        data = response.json()
        assert isinstance(data, dict)
        assert isinstance(data.get("error"), str) and data["error"]
        assert isinstance(data.get("message"), str) and data["message"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def mutated_envelopes(draw):
    """A valid registration or link with one part replaced by junk."""
    if draw(st.booleans()):
        envelope = registration(Signer.generate("ed25519"), new_handle())
    else:
        envelope = json.loads(BUILDER.lines[draw(st.integers(0, 1))])
    where = draw(st.sampled_from(["top", "payload", "signature"]))
    target = envelope if where == "top" else envelope[where]
    key = draw(st.sampled_from(sorted(target)) | st.text(max_size=8))
    if draw(st.booleans()):
        target.pop(key, None)
    else:
        target[key] = draw(json_values)
    return json.dumps(envelope).encode()


bodies = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=300).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated_envelopes(),
    st.lists(mutated_envelopes(), min_size=1, max_size=3).map(lambda xs: b"\n".join(xs)),
)
segments = st.one_of(
    st.text(max_size=70),
    st.text(alphabet=string.hexdigits, min_size=60, max_size=68),
    st.sampled_from(["ed25519", "nostr", "npub1", "", ".", "..", "%", "\x00"]),
)
CONTENT_TYPES = [
    None,
    "application/json",
    "application/x-ndjson",
    "text/plain",
    "multipart/form-data",
    "application/json; charset=latin-1",
    "x/\x7f",
]


def seg(text: str) -> str:
    return quote(text, safe="")


@SETTINGS
@given(body=bodies, content_type=st.sampled_from(CONTENT_TYPES))
def test_register_never_500(http, body, content_type):
    headers = (
        {}
        if content_type is None or not content_type.isprintable()
        else {"content-type": content_type}
    )
    check(http.post("/v1/register", content=body, headers=headers))


@SETTINGS
@given(body=bodies, content_type=st.sampled_from(CONTENT_TYPES), known=st.booleans())
def test_chain_post_never_500(http, body, content_type, known):
    headers = (
        {}
        if content_type is None or not content_type.isprintable()
        else {"content-type": content_type}
    )
    path = CHAIN_PATH if known else identity_path(Signer.generate("ed25519").key_id)
    check(http.post(path, content=body, headers=headers))


@SETTINGS
@given(
    alg=segments,
    hexkey=segments,
    suffix=st.sampled_from(["", "/forks", "/", "/x"]),
    after=st.none() | st.text(max_size=25),
)
def test_chain_paths_never_500(http, alg, hexkey, suffix, after):
    path = f"/v1/sigchains/{seg(alg)}/{seg(hexkey)}{suffix}"
    params = {} if after is None else {"after": after}
    check(http.get(path, params=params))
    check(http.post(path, content=b"{}\n"))


@SETTINGS
@given(handle=segments)
def test_lookup_paths_never_500(http, handle):
    check(http.get(f"/v1/u/{seg(handle)}"))


@SETTINGS
@given(
    resource=st.none() | st.text(max_size=80),
    rel=st.lists(st.text(max_size=20), max_size=2),
    prefix=st.sampled_from(["", "acct:", "acct:@"]),
    host=st.sampled_from(["example.org", "EXAMPLE.ORG", "other", ""]),
)
def test_webfinger_never_500(http, resource, rel, prefix, host):
    params: list[tuple[str, str]] = [("rel", r) for r in rel]
    if resource is not None:
        params.append(("resource", f"{prefix}{resource}@{host}" if prefix else resource))
    response = http.get("/.well-known/webfinger", params=params)
    check(response)


@SETTINGS
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]),
    path=st.lists(st.text(max_size=12), max_size=5).map(
        lambda parts: "/" + "/".join(seg(p) for p in parts)
    ),
    query=st.text(max_size=40),
    body=st.binary(max_size=200),
)
def test_any_request_never_500(http, method, path, query, body):
    url = str(http.base_url).rstrip("/") + path + ("?" + quote(query, safe="=&") if query else "")
    response = http.request(
        method, url, content=body if method not in ("GET", "HEAD", "OPTIONS") else None
    )
    assert response.status_code < 500
    if response.status_code >= 400 and method != "HEAD":
        check(response)


# ------------------------------------------- the limits: quotas, deadlines, raw bytes


@pytest.fixture(scope="module")
def tight():
    """A server whose quotas, deadlines and cap are small enough for garbage to reach them."""
    from kez_server.testing import running_server

    with running_server(
        identity_max_links=3,
        identity_max_bytes=4000,
        client_links_per_hour=40,
        client_bytes_per_hour=20_000,
        header_timeout=0.3,
        body_timeout=0.3,
        max_connections=50,
    ) as server:
        yield server


@SETTINGS
@given(
    links=st.integers(1, 5),
    body=st.none() | bodies,
    address=st.sampled_from(["203.0.113.1", "203.0.113.2", None]),
)
def test_quota_paths_never_500(tight, links, body, address):
    signer, builder = chain(links)
    content = b"".join(builder.lines) if body is None else body
    headers = {"content-type": "application/x-ndjson"}
    if address:
        headers["x-forwarded-for"] = address
    with httpx.Client(base_url=tight.url, timeout=30, verify=ssl_context()) as client:
        check(client.post(identity_path(signer.key_id), content=content, headers=headers))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.binary(max_size=300)
    | st.builds(
        lambda head, junk: head + junk,
        st.sampled_from(
            [
                b"GET /v1/healthz HTTP/1.1\r\n",
                b"POST /v1/register HTTP/1.1\r\nContent-Length: 50\r\n\r\n",
                b"POST /v1/sigchains/ed25519/"
                + b"a" * 64
                + b" HTTP/1.1\r\nContent-Length: 9\r\n\r\n",
            ]
        ),
        st.binary(max_size=100),
    ),
)
def test_raw_bytes_never_500(tight, data):
    """Whatever bytes arrive, and however they stop, the answers are typed and below 500."""
    import socket

    host, port = tight.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    if received:
        status = int(received.split(b" ", 2)[1])
        assert status < 500, received[:300]
        if status >= 400:
            head, _, payload = received.partition(b"\r\n\r\n")
            assert b"application/json" in head.lower(), received[:300]
            if b"chunked" not in head.lower():
                data_ = json.loads(payload)
                assert data_["error"] and data_["message"]
    with httpx.Client(base_url=tight.url, verify=ssl_context()) as client:
        assert client.get("/v1/healthz").status_code == 200
