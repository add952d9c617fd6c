"""Web Push: subscriptions with X-KEZ-Auth, empty VAPID-signed pushes, SSRF refusals.

A real kez-server under uvicorn and `FakePushService`s (stand-in push
services on 127.0.0.1 that verify the VAPID JWT) admitted with
`--push-allow 127.0.0.1:PORT`. Pushes are triggered through the entry point
the inbox calls, `app.state.kez.push.message_stored(handle)`.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time

import httpx
from kez_core.tls import ssl_context  # one CA bundle load per process
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kez_core.keys import Signer
from kez_core.messaging.inbox_auth import signed_bytes
from kez_server.testing import fake_push_service, running_server
from server_helpers import assert_error, chain, identity_path, new_handle, registration

SUBJECT = "mailto:push-test@example.org"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def browser_keys() -> dict[str, str]:
    """What a browser's PushSubscription carries: a P-256 point and 16 auth bytes."""
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return {"p256dh": b64(point), "auth": b64(secrets.token_bytes(16))}


def auth(
    signer: Signer, method: str, path: str, bound: str, *, ts: int | None = None, key: bool = False
) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    sig = signer.sign(signed_bytes(method, path, bound, ts)).hex()
    return {"x-kez-auth": f"{ts}:{signer.key_id}:{sig}" if key else f"{ts}:{sig}"}


class User:
    def __init__(self, http: httpx.Client, alg: str = "ed25519") -> None:
        self.http = http
        self.signer = Signer.generate(alg)
        self.handle = new_handle()
        answer = http.post("/v1/register", json=registration(self.signer, self.handle))
        assert answer.status_code == 201, answer.text

    def subscribe(
        self, endpoint: str, *, signer: Signer | None = None, bound: str | None = None, **kw
    ):
        path = f"/v1/push/subscribe/{self.handle}"
        body = {"endpoint": endpoint, "keys": browser_keys(), "expirationTime": None}
        headers = auth(
            signer or self.signer, "POST", path, endpoint if bound is None else bound, **kw
        )
        return self.http.post(path, json=body, headers=headers)

    def unsubscribe(self, endpoint: str):
        path = f"/v1/push/unsubscribe/{self.handle}"
        return self.http.post(
            path, json={"endpoint": endpoint}, headers=auth(self.signer, "POST", path, endpoint)
        )

    def listed(self) -> list[str]:
        path = f"/v1/push/subscriptions/{self.handle}"
        answer = self.http.get(path, headers=auth(self.signer, "GET", path, ""))
        assert answer.status_code == 200, answer.text
        return [s["endpoint"] for s in answer.json()["subscriptions"]]


@pytest.fixture(scope="module")
def vapid_public(tmp_path_factory):
    """A VAPID key made up front, so the fake push services know it before the server starts."""
    from kez_server.vapid import load_or_create

    path = tmp_path_factory.mktemp("vapid") / "vapid.pem"
    return path, load_or_create(path).public_b64url


@pytest.fixture(scope="module")
def fakes(vapid_public):
    _path, public = vapid_public
    with fake_push_service(public, SUBJECT) as one, fake_push_service(public, SUBJECT) as two:
        yield one, two


@pytest.fixture(scope="module")
def push_server(fakes, vapid_public, db_url):
    allow = [f"{fake.url.split('://')[1]}" for fake in fakes]
    with running_server(
        db=db_url, vapid_key=str(vapid_public[0]), vapid_subject=SUBJECT, push_allow=allow
    ) as server:
        yield server


@pytest.fixture
def http(push_server):
    with httpx.Client(base_url=push_server.url, timeout=30, verify=ssl_context()) as client:
        yield client


@pytest.fixture
def fake(fakes):
    one = fakes[0]
    one.records.clear()
    one.answers.clear()
    one.release.clear()
    one.arrived.clear()
    one.max_in_flight = 0
    return one


def endpoint(fake, name: str | None = None) -> str:
    return f"{fake.url}/push/{name or secrets.token_hex(6)}"


def wait_for(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def stored(server, handle: str) -> None:
    server.app.state.kez.push.message_stored(handle)


# ------------------------------------------------------------- the endpoints


def test_vapid_public_key_is_the_key_file(http, vapid_public):
    answer = http.get("/v1/push/vapid-public-key")
    assert answer.status_code == 200
    assert answer.json() == {"public_key": vapid_public[1]}
    raw = base64.urlsafe_b64decode(vapid_public[1] + "=")
    assert len(raw) == 65 and raw[0] == 4  # the applicationServerKey a browser takes


def test_subscribe_list_unsubscribe(http, fake):
    user = User(http)
    url = endpoint(fake)
    answer = user.subscribe(url)
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"handle": user.handle, "endpoint": url, "subscribed": True}
    assert user.subscribe(url).status_code == 200  # the same again: keys renewed, not doubled
    assert user.listed() == [url]
    answer = user.unsubscribe(url)
    assert answer.status_code == 200 and answer.json()["removed"] is True
    assert user.listed() == []
    assert user.unsubscribe(url).json()["removed"] is False


def test_bip340_primary_and_device_key_sign(http, fake, push_server):
    user = User(http, alg="nostr")
    assert user.subscribe(endpoint(fake)).status_code == 201
    # a device key named in the header: only once the stored chain lists it as a device
    signer, builder = chain(1)
    device = Signer.generate("ed25519")
    builder.add_device(signer, device, name="phone")
    http.post(
        identity_path(signer.key_id),
        content=b"".join(builder.lines),
        headers={"content-type": "application/x-ndjson"},
    )
    owner = User.__new__(User)
    owner.http, owner.signer, owner.handle = http, signer, new_handle()
    assert http.post("/v1/register", json=registration(signer, owner.handle)).status_code == 201
    assert owner.subscribe(endpoint(fake), signer=device, key=True).status_code == 201
    stranger = Signer.generate("ed25519")
    assert_error(owner.subscribe(endpoint(fake), signer=stranger, key=True), 401, "unauthorized")


def test_auth_header_is_bound_to_the_endpoint(http, fake):
    user = User(http)
    # a header signed for one endpoint does not subscribe another
    answer = user.subscribe(endpoint(fake, "mine"), bound=endpoint(fake, "other"))
    assert_error(answer, 401, "unauthorized")
    # nor another handle's, nor with another key, nor stale
    other = User(http)
    path = f"/v1/push/subscribe/{user.handle}"
    url = endpoint(fake)
    body = {"endpoint": url, "keys": browser_keys()}
    for headers in (
        auth(other.signer, "POST", path, url),
        auth(user.signer, "POST", f"/v1/push/subscribe/{other.handle}", url),
        auth(user.signer, "POST", path, url, ts=int(time.time()) - 120),
        auth(user.signer, "GET", path, url),
        {"x-kez-auth": "garbage"},
        {},
    ):
        assert_error(http.post(path, json=body, headers=headers), 401, "unauthorized")
    assert user.listed() == []
    path = f"/v1/push/subscriptions/{user.handle}"
    assert_error(http.get(path, headers=auth(other.signer, "GET", path, "")), 401)


def test_unknown_handle_and_bad_bodies(http, fake):
    assert_error(http.get("/v1/push/subscriptions/nobody-here"), 404, "not_found")
    user = User(http)
    path = f"/v1/push/subscribe/{user.handle}"
    url = endpoint(fake)
    good = browser_keys()
    not_a_point = b64(b"\x04" + bytes(64))

    def sub(**keys: str) -> bytes:
        return json.dumps({"endpoint": url, "keys": {**good, **keys}}).encode()

    for body, code in (
        (b"{", "bad_json"),
        (b"[]", "bad_subscription"),
        (b'{"keys": {}}', "bad_subscription"),
        (json.dumps({"endpoint": url}).encode(), "bad_subscription"),
        (sub(p256dh="AAAA"), "bad_subscription"),
        (sub(auth="!!"), "bad_subscription"),
        (sub(auth=good["auth"] + "AA"), "bad_subscription"),
        (sub(p256dh=not_a_point), "bad_subscription"),
    ):
        answer = http.post(
            path,
            content=body,
            headers={"content-type": "application/json", **auth(user.signer, "POST", path, url)},
        )
        assert_error(answer, 400, code)
    answer = http.post(path, content=b"x" * 9000, headers={"content-type": "application/json"})
    assert_error(answer, 413, "too_large")


@pytest.mark.parametrize(
    "url",
    [
        "http://push.example.com/x",
        "https://127.0.0.1/x",
        "https://10.0.0.1/x",
        "https://192.168.1.20/x",
        "https://[::1]/x",
        "https://localhost/x",
        "https://169.254.169.254/latest/meta-data",
        "https://2130706433/x",
        "https://0x7f000001/x",
        "https://0177.0.0.1/x",
        "https://127.1/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://[::ffff:a00:1]/x",
        "https://[fe80::1]/x",
        "https://100.64.0.1/x",
        "https://224.0.0.1/x",
        "https://0.0.0.0/x",
        "https://user:pw@push.example.com/x",
        "ftp://push.example.com/x",
        "https:///x",
    ],
)
def test_ssrf_endpoints_refused(http, url):
    user = User(http)
    assert_error(user.subscribe(url), 422, "endpoint_refused")
    assert user.listed() == []


def test_allow_admits_only_the_exact_host_and_port(http, fake):
    user = User(http)
    host_port = fake.url.split("://")[1]
    port = int(host_port.rsplit(":", 1)[1])
    assert user.subscribe(f"http://{host_port}/p").status_code == 201
    assert user.subscribe(f"https://{host_port}/p").status_code == 201
    assert_error(
        user.subscribe(f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}/p"), 422
    )
    assert_error(user.subscribe(f"http://localhost:{port}/p"), 422)


# ------------------------------------------------------------------ sending


def test_push_is_empty_with_a_valid_vapid_token(http, fake, push_server):
    user = User(http)
    url = endpoint(fake)
    assert user.subscribe(url).status_code == 201
    stored(push_server, user.handle)
    wait_for(lambda: len(fake.records) == 1, "the push")
    record = fake.records[0]
    assert record.problems == (), record.problems
    assert record.body == b""
    assert record.ttl == "86400" and record.topic == "kez-inbox"
    assert record.claims["aud"] == fake.url and record.claims["sub"] == SUBJECT
    assert user.handle not in repr(record)  # nothing about the recipient reaches the push service


def test_a_message_posted_to_the_inbox_pushes_its_recipients_browsers(http, fake):
    """The whole path: POST /v1/messages stores an envelope, and the inbox's "stored for H"
    event sends H's subscriptions an empty push (not other handles' subscriptions)."""
    from inbox_helpers import envelope

    user, other = User(http), User(http)
    assert user.subscribe(endpoint(fake, "mine")).status_code == 201
    assert other.subscribe(endpoint(fake, "theirs")).status_code == 201
    answer = http.post("/v1/messages", json={"to": user.handle, "envelope": envelope()})
    assert answer.status_code == 201, answer.text
    wait_for(lambda: len(fake.records) == 1, "the push")
    time.sleep(0.2)  # a push for the other handle would have arrived by now
    assert [r.path for r in fake.records] == ["/push/mine"]
    assert fake.records[0].body == b"" and fake.records[0].problems == ()


def test_messages_stored_together_push_once_each(http, fake, push_server):
    """Many messages stored in one turn of the loop (a group commit answers many POSTs at
    once) share one subscription read: still one push per message and subscription."""
    user, other, nobody = User(http), User(http), User(http)
    assert user.subscribe(endpoint(fake, "u1")).status_code == 201
    assert user.subscribe(endpoint(fake, "u2")).status_code == 201
    assert other.subscribe(endpoint(fake, "o1")).status_code == 201
    service = push_server.app.state.kez.push
    loop = service._loop

    def together() -> None:
        for handle in (user.handle, nobody.handle, other.handle, user.handle):
            service.message_stored(handle)

    loop.call_soon_threadsafe(together)
    wait_for(lambda: len(fake.records) == 5, "the pushes")
    time.sleep(0.2)
    assert sorted(r.path for r in fake.records) == [
        "/push/o1",
        "/push/u1",
        "/push/u1",
        "/push/u2",
        "/push/u2",
    ]


def test_each_push_gets_its_own_audience(http, fakes, push_server):
    one, two = fakes
    for fake in fakes:
        fake.records.clear()
        fake.answers.clear()
    user = User(http)
    assert user.subscribe(endpoint(one)).status_code == 201
    assert user.subscribe(endpoint(two)).status_code == 201
    stored(push_server, user.handle)
    wait_for(lambda: len(one.records) == 1 and len(two.records) == 1, "both pushes")
    # pywebpush writes `aud` into the claims dict it is handed: a shared dict would
    # carry the first origin to the second push service
    assert one.records[0].problems == () and two.records[0].problems == ()
    assert one.records[0].claims["aud"] == one.url
    assert two.records[0].claims["aud"] == two.url


@pytest.mark.parametrize("status", [404, 410])
def test_gone_subscription_is_deleted(http, fake, push_server, status):
    user, other = User(http), User(http)
    gone, alive = endpoint(fake, "gone"), endpoint(fake, "alive")
    fake.answers["/push/gone"] = status
    for url in (gone, alive):
        assert user.subscribe(url).status_code == 201
    assert other.subscribe(gone).status_code == 201  # one browser, two handles
    stored(push_server, user.handle)
    wait_for(lambda: gone not in user.listed(), "the gone subscription to be removed")
    assert user.listed() == [alive]
    assert other.listed() == []  # the endpoint is gone for every handle


def test_other_failures_keep_the_subscription(http, fake, push_server):
    user = User(http)
    url = endpoint(fake, "busy")
    fake.answers["/push/busy"] = 503
    assert user.subscribe(url).status_code == 201
    stored(push_server, user.handle)
    wait_for(lambda: len(fake.records) == 1, "the push")
    time.sleep(0.2)
    assert user.listed() == [url]


def test_redirects_are_not_followed(http, fake, push_server):
    user = User(http)
    fake.answers["/push/moved"] = f"redirect:{fake.url}/push/target"
    assert user.subscribe(endpoint(fake, "moved")).status_code == 201
    service = push_server.app.state.kez.push
    failed = service.failed
    stored(push_server, user.handle)
    wait_for(lambda: service.failed == failed + 1, "the redirected push to fail")
    assert [r.path for r in fake.records] == ["/push/moved"]  # the target was never asked


def test_a_hanging_push_service_does_not_hold_the_caller(http, fake, push_server):
    user = User(http)
    fake.answers["/push/slow"] = "hang"
    assert user.subscribe(endpoint(fake, "slow")).status_code == 201
    stored(push_server, user.handle)
    # message_stored has returned; the push service has not answered (it holds the
    # request until released), so the caller never waited for it
    assert fake.records == []
    wait_for(fake.arrived.is_set, "the push to arrive")
    assert fake.records == []
    fake.release.set()
    wait_for(lambda: len(fake.records) == 1, "the held push to finish")


def test_a_hanging_push_does_not_hold_message_stored_in_the_loop(http, fake, push_server):
    """Called on the server's own event loop (as the inbox's POST handler will), it only schedules."""
    import asyncio

    user = User(http)
    fake.answers["/push/held"] = "hang"
    assert user.subscribe(endpoint(fake, "held")).status_code == 201
    service = push_server.app.state.kez.push
    done = threading.Event()

    def in_loop() -> None:
        service.message_stored(user.handle)
        done.set()

    service._loop.call_soon_threadsafe(in_loop)
    wait_for(done.is_set, "message_stored to return")
    wait_for(fake.arrived.is_set, "the push to arrive")
    assert fake.records == []
    fake.release.set()
    wait_for(lambda: len(fake.records) == 1, "the held push to finish")
    assert asyncio  # imported for the reader: the loop is the server's


def test_fan_out_concurrency_is_bounded(http, fake, push_server):
    users = [User(http), User(http)]
    for n in range(40):
        fake.answers[f"/push/c{n}"] = "hang"
        assert users[n % 2].subscribe(endpoint(fake, f"c{n}")).status_code == 201
    for user in users:
        stored(push_server, user.handle)
    wait_for(lambda: fake.in_flight == 32, "32 pushes in flight")
    time.sleep(0.3)  # give a 33rd the chance to arrive: it must not
    assert fake.max_in_flight == 32 and fake.in_flight == 32
    fake.release.set()
    wait_for(lambda: len(fake.records) == 40, "all 40 pushes")
    assert fake.max_in_flight == 32
    assert all(r.problems == () for r in fake.records)


def test_vapid_key_file_is_private_and_reused(tmp_path):
    from kez_server.vapid import load_or_create

    path = tmp_path / "sub" / "vapid.pem"
    first = load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create(path).public_b64url == first.public_b64url
    assert [p.name for p in path.parent.iterdir()] == ["vapid.pem"]  # no temporary left


def test_vapid_key_default_sits_beside_the_database(tmp_path):
    db = tmp_path / "kez.db"
    with running_server(db=str(db), vapid_key=None) as server:
        key = httpx.get(server.url + "/v1/push/vapid-public-key").json()["public_key"]
    assert (tmp_path / "kez.db.vapid.pem").exists()
    with running_server(db=str(db), vapid_key=None) as server:  # a restart keeps the key
        assert httpx.get(server.url + "/v1/push/vapid-public-key").json()["public_key"] == key


def test_bad_vapid_key_file_is_a_typed_error(tmp_path):
    from kez_server.vapid import VapidKeyError, load_or_create

    path = tmp_path / "vapid.pem"
    path.write_text("not a key")
    with pytest.raises(VapidKeyError) as info:
        load_or_create(path)
    assert info.value.exit_code == 4
    assert path.read_text() == "not a key"  # never overwritten


async def _rebinding_lookup(host: str, _port: int) -> list[str]:
    """At subscribe time `localhost` looks public; the push connects through the system resolver."""
    return ["93.184.215.14"] if host == "localhost" else []


def test_dns_rebinding_is_refused_at_send_time(fake, vapid_public, caplog):
    caplog.set_level("INFO", logger="kez_server.push")
    port = fake.url.rsplit(":", 1)[1]
    with (
        running_server(
            vapid_key=str(vapid_public[0]),
            vapid_subject=SUBJECT,
            push_allow=[f"localhost:{int(port) + 1 if int(port) < 65535 else 1}"],  # another port
            push_lookup=_rebinding_lookup,
        ) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        user = User(http)
        url = f"https://localhost:{port}/push/rebound"
        assert user.subscribe(url).status_code == 201  # the check saw a public address
        service = server.app.state.kez.push
        stored(server, user.handle)
        wait_for(lambda: service.failed == 1, "the push to be refused")
        assert not fake.arrived.is_set()  # no connection reached 127.0.0.1
        assert "resolves to 127.0.0.1, not a public address" in caplog.text
        assert user.listed() == [url]


def test_send_time_resolver_refuses_private_answers():
    import asyncio

    from kez_server.push_targets import EndpointPolicy, public_resolver

    async def resolve(policy: EndpointPolicy) -> list:
        resolver = public_resolver(policy)
        try:
            return await resolver.resolve("localhost", 8443)
        finally:
            await resolver.close()

    with pytest.raises(OSError, match="not a public address"):
        asyncio.run(resolve(EndpointPolicy()))
    assert asyncio.run(resolve(EndpointPolicy(["localhost:8443"])))
