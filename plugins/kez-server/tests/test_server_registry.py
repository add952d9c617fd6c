"""Handle registry, lookup, WebFinger and health: the seed's 13 scenarios and every rule.

Runs against the real server under uvicorn, once on SQLite and once on
PostgreSQL (the `server` fixture is parametrized over both).
"""

from __future__ import annotations

import json

import pytest
from kez_core.keys import Signer
from kez_core.signed import SignedObject, sign
from kez_core.timefmt import now
from kez_server import __version__
from server_helpers import assert_error, minutes, new_handle, registration

JRD = "application/jrd+json"


def register(client, signer=None, handle=None, **kwargs):
    signer = signer or Signer.generate("ed25519")
    handle = new_handle() if handle is None else handle
    return client.post("/v1/register", json=registration(signer, handle, **kwargs)), signer, handle


# ------------------------------------------------------------- the seed's 13


def test_healthz(client, server):
    response = client.get("/v1/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "server": "example.org",
        "version": __version__,
        "db": "ok",
    }


def test_registration_success(client, server):
    response, signer, handle = register(client)
    assert response.status_code == 201, response.text
    data = response.json()
    assert set(data) == {"handle", "fqhn", "primary", "identity", "sigchain_url", "registered_at"}
    assert data["identity"] == signer.key_id
    assert data["handle"] == handle
    assert data["fqhn"] == f"{handle}@example.org"
    assert data["primary"] == signer.key_id
    assert (
        data["sigchain_url"] == f"{server.url}/v1/sigchains/ed25519/{signer.key_id.split(':')[1]}"
    )
    assert abs((now() - _time(data["registered_at"])).total_seconds()) < 60
    assert response.headers["location"] == f"/v1/u/{handle}"


def test_lookup(client):
    created, _signer, handle = register(client)
    response = client.get(f"/v1/u/{handle}")
    assert response.status_code == 200
    assert response.json() == created.json()


def test_lookup_unknown_is_404(client):
    assert_error(client.get(f"/v1/u/{new_handle()}"), 404, "not_found")
    assert_error(client.get("/v1/u/NOT_A_HANDLE"), 404, "not_found")


def test_duplicate_handle(client):
    _created, _signer, handle = register(client)
    response, _, _ = register(client, handle=handle)  # another key, same handle
    assert "taken" in assert_error(response, 409, "handle_taken")["message"]


def test_duplicate_primary(client):
    _created, signer, handle = register(client)
    response, _, _ = register(client, signer=signer)  # same key, another handle
    assert handle in assert_error(response, 409, "primary_taken")["message"]


def test_wrong_server(client):
    response, _, _ = register(client, server="elsewhere.example")
    assert "example.org" in assert_error(response, 422, "wrong_server")["message"]


@pytest.mark.parametrize("handle", ["admin", "root", "postmaster", "kez", "www", "support"])
def test_reserved_name(client, handle):
    response, _, _ = register(client, handle=handle)
    assert_error(response, 422, "reserved_handle")


def test_tampered_signature(client):
    signer = Signer.generate("ed25519")
    envelope = registration(signer, new_handle())
    envelope["payload"]["handle"] = new_handle()  # changed after signing
    assert_error(client.post("/v1/register", json=envelope), 422, "bad_signature")
    envelope = registration(signer, new_handle())
    sig = envelope["signature"]["sig"]
    envelope["signature"]["sig"] = ("0" if sig[0] != "0" else "1") + sig[1:]
    assert_error(client.post("/v1/register", json=envelope), 422, "bad_signature")


@pytest.mark.parametrize("offset", [-6, -60, 6, 24 * 60])
def test_stale_timestamp(client, offset):
    response, _, _ = register(client, created_at=now() + minutes(offset))
    assert "minutes" in assert_error(response, 422, "stale_registration")["message"]


def test_timestamp_within_five_minutes_is_accepted(client):
    for offset in (-4, 4):
        response, _, _ = register(client, created_at=now() + minutes(offset))
        assert response.status_code == 201, response.text


def test_replay(client):
    envelope = registration(Signer.generate("ed25519"), new_handle())
    assert client.post("/v1/register", json=envelope).status_code == 201
    assert_error(client.post("/v1/register", json=envelope), 409, "replay")


def test_webfinger(client, server):
    created, signer, handle = register(client)
    response = client.get(
        "/.well-known/webfinger", params={"resource": f"acct:{handle}@example.org"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(JRD)
    assert response.headers["access-control-allow-origin"] == "*"
    jrd = response.json()
    assert jrd["subject"] == f"acct:{handle}@example.org"
    assert jrd["aliases"] == [f"{server.url}/v1/u/{handle}"]
    assert jrd["properties"] == {"https://kez.lat/ns/primary": signer.key_id}
    assert jrd["links"] == [
        {
            "rel": "https://kez.lat/ns/sigchain",
            "type": "application/x-ndjson",
            "href": created.json()["sigchain_url"],
        }
    ]
    # RFC 7033 4.3: rel filters the links
    other = client.get(
        "/.well-known/webfinger",
        params={"resource": f"acct:{handle}@example.org", "rel": "http://webfinger.net/rel/avatar"},
    )
    assert other.status_code == 200 and other.json()["links"] == []


def test_webfinger_unknown(client):
    assert_error(
        client.get(
            "/.well-known/webfinger", params={"resource": f"acct:{new_handle()}@example.org"}
        ),
        404,
        "not_found",
    )
    _created, _signer, handle = register(client)
    assert_error(
        client.get("/.well-known/webfinger", params={"resource": f"acct:{handle}@other.example"}),
        404,
        "not_found",
    )
    assert_error(
        client.get("/.well-known/webfinger", params={"resource": "https://example.org/"}), 404
    )
    assert_error(client.get("/.well-known/webfinger"), 400, "bad_query")


# ------------------------------------------------------------ more rules


def test_nostr_primary(client, server):
    signer = Signer.generate("nostr")
    response, _, handle = register(client, signer=signer)
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["primary"] == signer.key_id and signer.key_id.startswith("nostr:")
    assert data["sigchain_url"].endswith(f"/v1/sigchains/nostr/{signer.key_id.split(':')[1]}")
    assert client.get(f"/v1/u/{handle}").json()["primary"] == signer.key_id


@pytest.mark.parametrize(
    "handle", ["ab", "a" * 33, "Alice", "_alice", "-alice", "al ice", "al.ice", "alïce", ""]
)
def test_bad_handle(client, handle):
    response, _, _ = register(client, handle=handle)
    assert_error(response, 422, "bad_handle")


def test_good_handles(client):
    for handle in ("abc", "a" * 32, "0day", "x_y-z"):
        handle = handle if len(handle) == 32 else handle + new_handle("")[:4]
        response, _, _ = register(client, handle=handle[:32])
        assert response.status_code == 201, response.text


def test_envelope_tag_and_payload_type(client):
    signer = Signer.generate("ed25519")
    claim_like = sign(
        "handle_registration", _payload(signer), signer
    ).to_dict()  # kez.handle_registration
    assert_error(client.post("/v1/register", json=claim_like), 400, "bad_payload")
    envelope = registration(signer, new_handle())
    envelope["kez"] = "claim"
    assert_error(client.post("/v1/register", json=envelope), 400, "bad_envelope")
    envelope = registration(signer, new_handle())
    envelope["extra"] = 1
    assert_error(client.post("/v1/register", json=envelope), 400, "bad_envelope")
    two = sign("handle_registration", {**_payload(signer), "version": 2}, signer, namespace="chat")
    assert_error(client.post("/v1/register", json=two.to_dict()), 400, "bad_payload")
    for missing in ("handle", "primary", "server", "created_at"):
        payload = _payload(signer)
        del payload[missing]
        obj = sign("handle_registration", payload, signer, namespace="chat")
        assert (
            missing
            in assert_error(client.post("/v1/register", json=obj.to_dict()), 400, "bad_payload")[
                "message"
            ]
        )


def test_key_mismatch(client):
    signer, other = Signer.generate("ed25519"), Signer.generate("ed25519")
    payload = {**_payload(signer), "primary": other.key_id}
    obj = sign("handle_registration", payload, signer, namespace="chat")
    assert_error(client.post("/v1/register", json=obj.to_dict()), 422, "key_mismatch")


def test_unknown_payload_fields_are_signed_and_kept(client, server):
    signer = Signer.generate("ed25519")
    envelope = registration(signer, new_handle(), display_name="Alice")
    assert client.post("/v1/register", json=envelope).status_code == 201
    stored = (
        server.store.engine.connect()
        .execute(
            __import__("sqlalchemy").text(
                "SELECT envelope FROM kez_handles WHERE primary_key = :p"
            ),
            {"p": signer.key_id},
        )
        .scalar()
    )
    assert SignedObject.from_dict(json.loads(bytes(stored))).payload["display_name"] == "Alice"


def test_bad_json(client):
    assert_error(client.post("/v1/register", content=b"{not json"), 400, "bad_json")
    assert_error(
        client.post(
            "/v1/register",
            content=b'{"kez":"a","kez":"b"}',
            headers={"content-type": "application/json"},
        ),
        400,
        "bad_json",
    )
    assert_error(client.post("/v1/register", content=b"[1, NaN]"), 400, "bad_json")
    assert_error(client.post("/v1/register", content=b"\xff\xfe"), 400, "bad_json")
    assert_error(client.post("/v1/register", content=b"[]"), 400, "bad_envelope")
    assert_error(client.post("/v1/register", content=b""), 400, "bad_json")


def test_wrong_content_type(client):
    envelope = json.dumps(registration(Signer.generate("ed25519"), new_handle()))
    response = client.post("/v1/register", content=envelope, headers={"content-type": "text/html"})
    assert_error(response, 415, "unsupported_media_type")


def test_unknown_route_and_method_are_json(client):
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.get("/"), 404, "not_found")
    assert_error(client.delete("/v1/healthz"), 405, "method_not_allowed")
    assert_error(client.get("/v1/register"), 405, "method_not_allowed")
    assert_error(client.put("/v1/u/alice", content=b"x"), 405, "method_not_allowed")


def test_concurrent_registrations_of_one_handle(server):
    """Of many clients racing for one handle exactly one wins; the rest get 409."""
    import threading

    import httpx

    handle = new_handle("race")
    envelopes = [registration(Signer.generate("ed25519"), handle) for _ in range(8)]
    barrier = threading.Barrier(len(envelopes))
    statuses: list[int] = []

    def run(envelope):
        with httpx.Client(base_url=server.url, timeout=30) as http:
            barrier.wait()
            statuses.append(http.post("/v1/register", json=envelope).status_code)

    threads = [threading.Thread(target=run, args=(e,)) for e in envelopes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201] + [409] * 7


def _payload(signer):
    from kez_core.timefmt import format_time

    return {
        "handle": new_handle(),
        "primary": signer.key_id,
        "server": "example.org",
        "created_at": format_time(now()),
    }


def _time(text):
    from kez_core.timefmt import parse_time

    return parse_time(text)
