"""Profiles on kez-server: signed profile and picture, PUT with X-KEZ-Auth, GET with ETags."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import httpx
from inbox_helpers import register, with_device
from kez_core.keys import Signer
from kez_core.messaging.inbox_auth import sign_inbox_request
from kez_core.profile.signed_profile import create_profile
from kez_core.timefmt import now
from server_helpers import assert_error

PNG = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(600)


def put(
    client: httpx.Client,
    signer: Signer,
    handle: str,
    what: str,
    body: bytes,
    *,
    device: bool = False,
    bound: bytes | None = None,
) -> httpx.Response:
    path = f"/v1/u/{handle}/{what}"
    digest = hashlib.sha256(body if bound is None else bound).hexdigest()
    header = sign_inbox_request(signer, "PUT", path, digest, device=device)
    kind = "image/png" if what == "picture" else "application/json"
    return client.put(path, content=body, headers={"x-kez-auth": header, "content-type": kind})


def profile_bytes(signer: Signer, identity: str, **kw) -> bytes:
    return create_profile(signer, identity, **kw).canonical()


def test_profile_and_picture_round_trip(client: httpx.Client) -> None:
    alice, handle = register(client)
    assert_error(client.get(f"/v1/u/{handle}/profile"), 404, "no_profile")
    assert_error(client.get(f"/v1/u/{handle}/picture"), 404, "no_picture")
    digest = hashlib.sha256(PNG).hexdigest()
    answer = put(client, alice, handle, "picture", PNG)
    assert answer.status_code == 200, answer.text
    assert answer.json()["picture_sha256"] == digest
    ref = f"{client.base_url}v1/u/{handle}/picture#kez-visual-v1:" + "ab" * 16
    body = profile_bytes(alice, alice.key_id, name="Alice", picture=ref, picture_sha256=digest)
    answer = put(client, alice, handle, "profile", body)
    assert answer.status_code == 200, answer.text
    got = client.get(f"/v1/u/{handle}/profile")
    assert got.status_code == 200 and got.content == body
    etag = got.headers["etag"]
    assert client.get(f"/v1/u/{handle}/profile", headers={"if-none-match": etag}).status_code == 304
    pic = client.get(f"/v1/u/{handle}/picture")
    assert pic.status_code == 200 and pic.content == PNG
    assert pic.headers["content-type"] == "image/png"
    assert pic.headers["etag"] == f'"{digest}"'
    assert pic.headers["x-content-type-options"] == "nosniff"
    assert (
        client.get(
            f"/v1/u/{handle}/picture", headers={"if-none-match": pic.headers["etag"]}
        ).status_code
        == 304
    )


def test_device_may_publish(client: httpx.Client) -> None:
    primary, device, handle = with_device(client)
    body = profile_bytes(device, primary.key_id, name="from the laptop")
    answer = put(client, device, handle, "profile", body, device=True)
    assert answer.status_code == 200, answer.text
    assert client.get(f"/v1/u/{handle}/profile").content == body


def test_refusals(client: httpx.Client) -> None:
    alice, handle = register(client)
    mallory, other = register(client)
    # no auth / auth by someone else / auth bound to other bytes
    assert_error(
        client.put(f"/v1/u/{handle}/picture", content=PNG, headers={"content-type": "image/png"}),
        401,
    )
    assert_error(put(client, mallory, handle, "picture", PNG), 401)
    assert_error(put(client, alice, handle, "picture", PNG, bound=PNG + b"x"), 401)
    # a profile signed by another identity, even with alice's auth
    assert_error(
        put(client, alice, handle, "profile", profile_bytes(mallory, mallory.key_id, name="M")),
        422,
        "bad_profile",
    )
    assert_error(
        put(client, alice, handle, "profile", profile_bytes(mallory, alice.key_id, name="M")),
        422,
        "bad_profile",
    )
    # not JSON / not a profile / not a PNG / too large / wrong type
    assert_error(put(client, alice, handle, "profile", b"{nope"), 422, "bad_profile")
    assert_error(put(client, alice, handle, "profile", b'{"kez":"claim"}'), 422, "bad_profile")
    assert_error(put(client, alice, handle, "picture", b"GIF89a" + bytes(100)), 422, "bad_picture")
    with httpx.Client(
        base_url=client.base_url, timeout=30
    ) as once:  # the server closes after a 413
        assert_error(
            put(once, alice, handle, "picture", b"\x89PNG\r\n\x1a\n" + bytes(600 * 1024)), 413
        )
    wrong = client.put(
        f"/v1/u/{handle}/picture", content=PNG, headers={"content-type": "image/jpeg"}
    )
    assert_error(wrong, 415)
    # unknown handle
    assert_error(client.get("/v1/u/nobody-here/profile"), 404)
    # an older profile does not replace a newer one
    new = profile_bytes(alice, alice.key_id, name="new")
    old = profile_bytes(alice, alice.key_id, name="old", updated_at=now() - timedelta(hours=1))
    assert put(client, alice, handle, "profile", new).status_code == 200
    assert_error(put(client, alice, handle, "profile", old), 409, "stale_profile")
    future = profile_bytes(alice, alice.key_id, name="f", updated_at=now() + timedelta(hours=1))
    assert_error(put(client, alice, handle, "profile", future), 422, "bad_profile")
    assert client.get(f"/v1/u/{handle}/profile").content == new
