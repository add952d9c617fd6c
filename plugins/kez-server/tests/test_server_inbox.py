"""The HTTP inbox (spec section 11, "Inbox"): POST, GET, DELETE, live SSE, by-primary, auth.

Runs against the real server under uvicorn, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from inbox_helpers import auth, envelope, fetch, post, read_events, register, with_device
from kez_core.keys import Signer
from kez_core.messaging.inbox_auth import sign_inbox_request
from kez_server.testing import running_server
from server_helpers import assert_error


def test_an_unregistered_recipient_is_404(client):
    assert_error(post(client, "nobody-here"), 404, "not_found")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "kez:e1:",
        "kez:e1:!!!!",
        "kez:e1:" + "A" * 1001,
        "kez:z1:" + "A" * 1500,
        " " + envelope(),
    ],
)
def test_a_malformed_envelope_is_400(client, text):
    _, handle = register(client)
    assert_error(post(client, handle, text), 400, "bad_envelope")


def test_bodies_that_are_not_a_message_are_400(client):
    _, handle = register(client)
    for body in (
        [],
        {"to": handle},
        {"envelope": envelope()},
        {"to": 5, "envelope": envelope()},
        {"to": handle, "envelope": envelope(), "route": "XYZ"},
        {"to": handle, "envelope": envelope(), "route": "ab" * 16},
    ):
        assert_error(client.post("/v1/messages", json=body), 400)
    assert_error(
        client.post("/v1/messages", content=b"{nope", headers={"content-type": "application/json"}),
        400,
        "bad_json",
    )


def test_a_body_over_256_kib_is_413(client):
    _, handle = register(client)
    big = {"to": handle, "envelope": "kez:e1:" + "A" * (256 * 1024)}
    assert_error(client.post("/v1/messages", json=big), 413, "too_large")


def test_post_then_fetch_in_seq_order(client):
    signer, handle = register(client)
    sent = [envelope() for _ in range(5)]
    seqs = []
    for text in sent:
        answer = post(client, handle, text)
        assert answer.status_code == 201 and set(answer.json()) == {"seq"}
        seqs.append(answer.json()["seq"])
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    got = fetch(client, signer, handle)
    assert got.status_code == 200, got.text
    data = got.json()
    assert [m["envelope"] for m in data["messages"]] == sent
    assert [m["seq"] for m in data["messages"]] == seqs and data["next"] == seqs[-1]
    assert all(m["received_at"].endswith("Z") for m in data["messages"])
    page = fetch(client, signer, handle, since=seqs[1], limit=2).json()
    assert [m["seq"] for m in page["messages"]] == seqs[2:4] and page["next"] == seqs[3]
    empty = fetch(client, signer, handle, since=seqs[-1]).json()
    assert empty == {"messages": [], "next": seqs[-1]}


def test_the_route_is_kept(client):
    signer, handle = register(client)
    post(client, handle, route="ab" * 32)
    assert fetch(client, signer, handle).json()["messages"][0]["route"] == "ab" * 32


def test_seq_increases_across_handles(client):
    _, a = register(client)
    _, b = register(client)
    first = post(client, a).json()["seq"]
    assert post(client, b).json()["seq"] > first


@pytest.mark.parametrize("alg", ["ed25519", "nostr"])
def test_either_primary_algorithm_reads(client, alg):
    signer, handle = register(client, Signer.generate(alg))
    post(client, handle)
    assert len(fetch(client, signer, handle).json()["messages"]) == 1


def test_a_current_device_key_reads(client):
    primary, device, handle = with_device(client)
    post(client, handle)
    path = f"/v1/inbox/{handle}"
    answer = client.get(
        path, params={"since": 0}, headers=auth(device, path, "since=0", device=True)
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["messages"]) == 1
    # a key the chain does not know, claiming to be a device
    stranger = Signer.generate()
    refused = client.get(
        path, params={"since": 0}, headers=auth(stranger, path, "since=0", device=True)
    )
    assert assert_error(refused, 401, "unauthorized")["reason"] == "wrong_signer"


def test_a_removed_device_is_refused_on_its_next_read(client):
    """The keys a read is checked against are cached per stored head: a chain push that
    removes the device is seen by the very next request."""
    from kez_core.sigchain import SigchainBuilder
    from server_helpers import NDJSON, identity_path

    primary, device = Signer.generate(), Signer.generate("nostr")
    builder = SigchainBuilder()
    builder.add_device(primary, device, "laptop")
    client.post(identity_path(primary.key_id), content=b"".join(builder.lines), headers=NDJSON)
    _, handle = register(client, primary)
    path = f"/v1/inbox/{handle}"
    for _ in range(2):  # the second read is served from the cached keys
        answer = client.get(
            path, params={"since": 0}, headers=auth(device, path, "since=0", device=True)
        )
        assert answer.status_code == 200, answer.text
    builder.remove_device(primary, device.key_id)
    pushed = client.post(
        identity_path(primary.key_id), content=b"".join(builder.lines), headers=NDJSON
    )
    assert pushed.status_code == 200, pushed.text
    refused = client.get(
        path, params={"since": 0}, headers=auth(device, path, "since=0", device=True)
    )
    assert assert_error(refused, 401, "unauthorized")["reason"] == "wrong_signer"


def _refusal(client, handle, headers, since=0):
    answer = client.get(f"/v1/inbox/{handle}", params={"since": since}, headers=headers)
    data = assert_error(answer, 401, "unauthorized")
    assert answer.headers.get("www-authenticate")
    return data["reason"]


def test_every_bad_header_is_401(client):
    signer, handle = register(client)
    post(client, handle)
    path = f"/v1/inbox/{handle}"
    now = int(time.time())
    assert _refusal(client, handle, {}) == "missing"
    assert _refusal(client, handle, {"x-kez-auth": "yesterday:deadbeef"}) == "malformed"
    assert _refusal(client, handle, auth(signer, path, "since=0", ts=now - 120)) == "stale"
    assert _refusal(client, handle, auth(signer, path, "since=0", ts=now + 120)) == "future"
    assert _refusal(client, handle, auth(Signer.generate(), path, "since=0")) == "bad_signature"
    # signed for another cursor: a captured header cannot page through history
    assert _refusal(client, handle, auth(signer, path, "since=0"), since=1) == "bad_signature"
    # signed for another handle's path
    assert _refusal(client, handle, auth(signer, "/v1/inbox/other", "since=0")) == "bad_signature"


def test_delete_through_a_seq(client):
    signer, handle = register(client)
    seqs = [post(client, handle).json()["seq"] for _ in range(3)]
    path = f"/v1/inbox/{handle}"
    bound = f"through={seqs[1]}"
    header = {"x-kez-auth": sign_inbox_request(signer, "DELETE", path, bound)}
    # a GET header does not delete
    get_header = auth(signer, path, f"since={seqs[1]}")
    assert_error(client.delete(path, params={"through": seqs[1]}, headers=get_header), 401)
    answer = client.delete(path, params={"through": seqs[1]}, headers=header)
    assert answer.status_code == 200 and answer.json() == {"deleted": 2, "through": seqs[1]}
    assert [m["seq"] for m in fetch(client, signer, handle).json()["messages"]] == [seqs[2]]
    assert_error(client.delete(path, headers=header), 400, "bad_query")  # through is required


def test_by_primary(client):
    signer, handle = register(client)
    answer = client.get(f"/v1/by-primary/{signer.key_id}")
    assert answer.status_code == 200 and answer.json()["handle"] == handle
    assert answer.json()["primary"] == signer.key_id
    assert_error(client.get(f"/v1/by-primary/{Signer.generate().key_id}"), 404, "not_found")
    assert_error(client.get("/v1/by-primary/ed25519:XYZ"), 400, "bad_key")


def test_live_catches_up_then_streams(server, client):
    signer, handle = register(client)
    first = post(client, handle).json()["seq"]
    second = post(client, handle).json()["seq"]

    async def run():
        reader = asyncio.create_task(read_events(server.url, signer, handle, first, want=2))
        await asyncio.sleep(0.5)
        later = await asyncio.to_thread(post, client, handle)
        return await reader, later.json()["seq"]

    events, third = asyncio.run(run())
    assert [e["seq"] for e in events] == [second, third]


def test_live_refuses_a_header_signed_for_the_plain_inbox_path(client):
    signer, handle = register(client)
    path = f"/v1/inbox/{handle}"
    answer = client.get(path + "/live", params={"since": 0}, headers=auth(signer, path, "since=0"))
    assert assert_error(answer, 401)["reason"] == "bad_signature"


def test_a_reader_that_disconnects_loses_nothing(server, client):
    signer, handle = register(client)
    post(client, handle)
    got = asyncio.run(read_events(server.url, signer, handle, 0, want=1))
    assert len(got) == 1  # read live, then the reader went away
    post(client, handle)  # stored while nobody listens
    assert len(fetch(client, signer, handle).json()["messages"]) == 2
    again = asyncio.run(read_events(server.url, signer, handle, got[0]["seq"], want=1))
    assert len(again) == 1 and again[0]["seq"] > got[0]["seq"]


def test_stored_hook_runs_once_per_message(server, client):
    seen = []
    server.app.state.inbox.events.on_stored(lambda handle, seq: seen.append((handle, seq)))
    _, handle = register(client)
    seq = post(client, handle).json()["seq"]
    assert (handle, seq) in seen


# ------------------------------------------------------------ own servers


def test_sixty_a_minute_per_address_then_429():
    with (
        running_server(message_burst=3, message_rate=1 / 60) as srv,
        httpx.Client(base_url=srv.url) as client,
    ):
        _, handle = register(client)
        for _ in range(3):
            assert post(client, handle).status_code == 201
        refused = post(client, handle)
        data = assert_error(refused, 429, "rate_limited")
        assert int(refused.headers["retry-after"]) >= 1 and data["retry_after"] >= 1


def test_the_default_message_limit_is_sixty_a_minute():
    from kez_server.config import ServerSettings

    settings = ServerSettings(server_name="example.org")
    assert settings.message_burst == 60 and settings.message_rate * 60 == 60


def test_envelopes_are_purged_after_seven_days():
    now = [time.time()]
    with running_server(clock=lambda: now[0]) as srv, httpx.Client(base_url=srv.url) as client:
        signer, handle = register(client)
        old = post(client, handle).json()["seq"]
        now[0] += 7 * 24 * 3600 - 10
        newer = post(client, handle).json()["seq"]

        def fetch_at_clock():
            path = f"/v1/inbox/{handle}"
            header = {"x-kez-auth": sign_inbox_request(signer, "GET", path, "since=0", int(now[0]))}
            return client.get(path, params={"since": 0}, headers=header).json()["messages"]

        assert [m["seq"] for m in fetch_at_clock()] == [old, newer]
        now[0] += 20  # the first one is now older than 7 days: never served again
        assert [m["seq"] for m in fetch_at_clock()] == [newer]
        now[0] += 60  # purges run at most once a minute, from the writes
        post(client, handle)  # a write runs the purge: the row is gone from the table
        assert old not in [q for q, *_ in srv.store.inbox(handle, 0, 100, 0)]
        assert newer in [q for q, *_ in srv.store.inbox(handle, 0, 100, 0)]


def test_the_largest_envelope_is_stored(client):
    from kez_core.messaging.padding import MESSAGE_MAX_BUCKET

    signer, handle = register(client)
    largest = envelope(MESSAGE_MAX_BUCKET)  # of a message alone: the http transport's largest
    answer = post(client, handle, largest)
    assert answer.status_code == 201, answer.text
    assert fetch(client, signer, handle).json()["messages"][0]["envelope"] == largest


def test_messages_have_their_own_limit_not_the_write_burst():
    with (
        running_server(write_burst=2, write_rate=0.01) as srv,
        httpx.Client(base_url=srv.url) as client,
    ):
        _, handle = register(client)  # one write token
        assert [post(client, handle).status_code for _ in range(5)] == [201] * 5


def test_a_reused_header_is_judged_against_the_current_keys(client):
    """The server remembers signatures that held, not verdicts: the very same header stops
    working when its device leaves the chain, and when it is older than 60 s."""
    from kez_core.sigchain import SigchainBuilder
    from server_helpers import NDJSON, identity_path

    primary, device = Signer.generate(), Signer.generate("ed25519")
    builder = SigchainBuilder()
    builder.add_device(primary, device, "laptop")
    client.post(identity_path(primary.key_id), content=b"".join(builder.lines), headers=NDJSON)
    _, handle = register(client, primary)
    path = f"/v1/inbox/{handle}"
    header = auth(device, path, "since=0", device=True)
    for _ in range(3):  # one header, read again and again within its minute
        answer = client.get(path, params={"since": 0}, headers=header)
        assert answer.status_code == 200, answer.text
    old = auth(device, path, "since=0", ts=int(time.time()) - 61, device=True)
    assert _refusal(client, handle, old) == "stale"
    builder.remove_device(primary, device.key_id)
    pushed = client.post(
        identity_path(primary.key_id), content=b"".join(builder.lines), headers=NDJSON
    )
    assert pushed.status_code == 200, pushed.text
    assert _refusal(client, handle, header) == "wrong_signer"


def test_a_handle_unknown_then_registered_takes_messages(client):
    """POST remembers handles it found registered, never the ones it did not."""
    from server_helpers import new_handle, registration

    handle = new_handle("late")
    assert_error(post(client, handle), 404, "not_found")
    signer = Signer.generate()
    assert (
        client.post("/v1/register", json=registration(signer, handle, "example.org")).status_code
        == 201
    )
    seqs = [post(client, handle).json()["seq"] for _ in range(2)]
    assert [m["seq"] for m in fetch(client, signer, handle).json()["messages"]] == seqs
