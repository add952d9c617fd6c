"""Property tests of the Web Push endpoints: garbage never gets a 500, and no refused endpoint is stored.

Bodies, headers and paths are junk, or valid except for one part; the
endpoint URLs are drawn to look like the SSRF tricks (numeric hosts,
brackets, user info, controls) and are sent with a VALID X-KEZ-Auth for
them, so the endpoint rules themselves are what is exercised. Runs on
SQLite and PostgreSQL (the `server` fixture of conftest.py); the server has
no --push-allow, so nothing may ever be accepted but https on public names;
its resolver is a table (no DNS queries leave the machine).
"""

from __future__ import annotations

import json
import string
import time
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kez_core.keys import Signer
from kez_core.messaging.inbox_auth import signed_bytes
from kez_server.push_targets import EndpointPolicy, EndpointRefused
from kez_server.testing import running_server
from server_helpers import new_handle, registration
from test_server_props import check
from test_server_push import browser_keys

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KEY = Signer.generate("ed25519")
HANDLE = new_handle("p")


async def lookup(host: str, _port: int) -> list[str]:
    """A resolver without DNS: one public name, localhost, and nothing else."""
    table = {"push.example.com": ["93.184.215.14"], "localhost": ["127.0.0.1", "::1"]}
    if host.rstrip(".").lower() in table:
        return table[host.rstrip(".").lower()]
    raise OSError("no such host (test resolver)")


@pytest.fixture(scope="module")
def server(db_url):
    with running_server(db=db_url, push_lookup=lookup) as running:
        yield running


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/v1/register", json=registration(KEY, HANDLE)).status_code == 201
        yield client


def header(path: str, bound: str, method: str = "POST") -> dict[str, str]:
    ts = int(time.time())
    return {"x-kez-auth": f"{ts}:{KEY.sign(signed_bytes(method, path, bound, ts)).hex()}"}


hosts = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\A(0x[0-9a-f]{1,8}|[0-9]{1,10})(\.(0x[0-9a-f]{1,2}|[0-9]{1,4})){0,3}\Z"),
    st.from_regex(r"\A\[[0-9a-f:.%]{0,40}\]\Z"),
    st.sampled_from(
        [
            "push.example.com",
            "localhost",
            "LOCALHOST.",
            "127.0.0.1",
            "::1",
            "[::1]",
            "0",
            "[::ffff:127.0.0.1]",
            "a@b",
            "xn--",
            "-a.com",
        ]
    ),
)
endpoints = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda scheme, host, port, path: f"{scheme}://{host}{port}/{path}",
        st.sampled_from(["https", "http", "HTTPS", "ftp", "", "javascript"]),
        hosts,
        st.sampled_from(["", ":0", ":443", ":99999", ":-1", ":x", ":8443"]),
        st.text(max_size=20),
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@SETTINGS
@given(endpoint=endpoints, keys=st.none() | json_values, valid_keys=st.booleans())
def test_subscribe_with_valid_auth_never_500(http, endpoint, keys, valid_keys):
    path = f"/v1/push/subscribe/{HANDLE}"
    body = {"endpoint": endpoint, "keys": browser_keys() if valid_keys else keys}
    response = http.post(path, json=body, headers=header(path, endpoint))
    check(response)
    if response.status_code in (200, 201):  # only what the rules admit is stored
        assert EndpointPolicy().check_url(endpoint).host == "push.example.com"


@SETTINGS
@given(endpoint=endpoints)
def test_endpoint_rules_never_crash(endpoint):
    try:
        checked = EndpointPolicy().check_url(endpoint)
    except EndpointRefused as exc:
        assert exc.message
    else:
        assert checked.scheme == "https"
        assert checked.literal is None or checked.literal.is_global


def _sendable(text: str) -> bool:
    """A header value an HTTP client will send: printable, no space at either end (h11 refuses those)."""
    return text.isprintable() and text == text.strip()


@SETTINGS
@given(
    body=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())),
    auth=st.none()
    | st.text(max_size=200).filter(_sendable)
    | st.from_regex(r"\A[0-9]{1,12}:[0-9a-f:]{0,140}\Z"),
    action=st.sampled_from(["subscribe", "unsubscribe"]),
    content_type=st.sampled_from([None, "application/json", "text/plain", "application/x-ndjson"]),
)
def test_post_garbage_never_500(http, body, auth, action, content_type):
    headers = {}
    if auth is not None:
        headers["x-kez-auth"] = auth.encode()  # non-ASCII too: servers see latin-1
    if content_type is not None:
        headers["content-type"] = content_type
    check(http.post(f"/v1/push/{action}/{HANDLE}", content=body, headers=headers))


@SETTINGS
@given(
    handle=st.text(max_size=40),
    action=st.sampled_from(["subscribe", "unsubscribe", "subscriptions", "vapid-public-key", ""]),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    auth=st.none() | st.text(alphabet=string.printable.strip(), max_size=60),
)
def test_push_paths_never_500(http, handle, action, method, auth):
    headers = {} if auth is None else {"x-kez-auth": auth.encode()}
    response = http.request(
        method, f"/v1/push/{action}/{quote(handle, safe='')}", headers=headers, content=b"{}"
    )
    check(response)


def test_listing_after_fuzzing_holds_only_accepted_endpoints(http):
    path = f"/v1/push/subscriptions/{HANDLE}"
    answer = http.get(path, headers=header(path, "", "GET"))
    assert answer.status_code == 200
    for sub in answer.json()["subscriptions"]:
        EndpointPolicy().check_url(sub["endpoint"])
