"""Profiles and picture keys between identities, through a real kez-server and nostr-relay.

Alice publishes a scrambled picture; Bob, a contact, holds her picture key
(the `profile_key` body, as the messaging service will deliver it) and sees
her face; Carol, not a contact, sees noise. The kind 0 event is read back by
nostr-sdk (rust-nostr), an independent implementation.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from datetime import timedelta

import httpx
import numpy as np
import pytest
from PIL import Image

from kez_core.keys import Signer
from kez_core.messaging.inbox_auth import sign_inbox_request
from kez_core.profile import service, visual
from kez_core.profile.keys import ProfileKeyStore, accept_profile_key
from kez_core.profile.signed_profile import read_profile
from kez_core.sigchain import SigchainBuilder
from kez_core.nostr_event import verify_event
from kez_server.testing import running_server

CHI2_255_P001 = 330.5


def _face() -> bytes:
    """A picture file with structure (a gradient with a disc), as a JPEG-free PNG."""
    y, x = np.mgrid[0:300, 0:300]
    r = ((x - 150) ** 2 + (y - 150) ** 2 < 90**2) * 200
    arr = np.stack([x * 255 // 300, y * 255 // 300, r], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _chi2(png: bytes) -> float:
    arr = np.asarray(Image.open(io.BytesIO(png)))
    counts = np.bincount(arr.ravel(), minlength=256).astype(float)
    expected = arr.size / 256
    return float(((counts - expected) ** 2 / expected).sum())


def _register(
    client: httpx.Client, signer: Signer, handle: str, chain: SigchainBuilder | None = None
) -> None:
    from kez_core.signed import sign
    from kez_core.timefmt import format_time, now

    if chain is not None:
        alg, _, hexkey = signer.key_id.partition(":")
        answer = client.post(
            f"/v1/sigchains/{alg}/{hexkey}",
            content=b"".join(chain.lines),
            headers={"content-type": "application/x-ndjson"},
        )
        assert answer.status_code == 200, answer.text
    payload = {
        "handle": handle,
        "primary": signer.key_id,
        "server": "example.org",
        "created_at": format_time(now()),
    }
    answer = client.post(
        "/v1/register",
        json=sign("handle_registration", payload, signer, namespace="chat").to_dict(),
    )
    assert answer.status_code == 201, answer.text


@pytest.fixture(scope="module")
def server():
    with running_server(server_name="example.org") as running:
        yield running


def test_contact_sees_the_face_stranger_sees_noise(server, tmp_path) -> None:
    alice, device = Signer.generate("nostr"), Signer.generate()
    chain = SigchainBuilder()
    chain.add_device(alice, device, "laptop")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        _register(client, alice, "alice", chain)

    # alice publishes from her laptop (a device key)
    alice_home = tmp_path / "alice"
    pub = service.make_publication(
        device, alice.key_id, server.url, "alice", name="Alice", about="hello", picture=_face()
    )
    asyncio.run(service.publish(server.url, "alice", device, pub, device=True, timeout=10))
    profile = read_profile(pub.profile)
    assert profile.picture.startswith(f"{server.url}/v1/u/alice/picture#kez-visual-v1:")
    assert _chi2(pub.published_png) < CHI2_255_P001
    body = pub.key_body(alice.key_id)
    assert body is not None and body["kind"] == "profile_key"

    # bob, a contact, got the profile_key message; carol did not
    bob_home, carol_home = tmp_path / "bob", tmp_path / "carol"
    accept_profile_key(ProfileKeyStore(bob_home), json.loads(json.dumps(body)), alice.key_id)
    seen_by_bob = asyncio.run(
        service.read_peer_profile(bob_home, server.url, "alice", "example.org")
    )
    assert seen_by_bob.profile.name == "Alice" and seen_by_bob.key_held
    assert seen_by_bob.plain_png is not None
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(seen_by_bob.plain_png))),
        np.asarray(Image.open(io.BytesIO(pub.plain_png))),
    )
    seen_by_carol = asyncio.run(
        service.read_peer_profile(carol_home, server.url, "alice", "example.org")
    )
    assert (
        seen_by_carol.plain_png is None and seen_by_carol.scrambled and not seen_by_carol.key_held
    )
    assert seen_by_carol.published_png == pub.published_png

    # the cache answers for 6 hours; refresh fetches again
    again = asyncio.run(
        service.read_peer_profile(bob_home, "http://127.0.0.1:9", "alice", "example.org")
    )
    assert again.from_cache and again.key_held

    # alice removes bob and changes her picture: a new key bob never gets
    keep = service.OwnProfileStore(alice_home, alice.key_id)
    keep.save("alice", server.url, pub)
    new = service.make_publication(
        alice, alice.key_id, server.url, "alice", name="Alice", about="hello", picture=_face()
    )
    assert new.key != pub.key
    asyncio.run(service.publish(server.url, "alice", alice, new, device=False, timeout=10))
    after = asyncio.run(
        service.read_peer_profile(bob_home, server.url, "alice", "example.org", refresh=True)
    )
    assert after.scrambled and after.plain_png is None

    # a name change keeps the picture and its key
    renamed = service.make_publication(
        alice, alice.key_id, server.url, "alice", name="Alice B", about="", keep=keep.load()
    )
    assert renamed.published_png == pub.published_png and renamed.key == pub.key
    assert read_profile(renamed.profile).picture == profile.picture


def test_swapped_picture_is_detected(server, tmp_path) -> None:
    mallory_server_side = Signer.generate()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        _register(client, mallory_server_side, "dana")
        pub = service.make_publication(
            mallory_server_side,
            mallory_server_side.key_id,
            server.url,
            "dana",
            name="Dana",
            about="",
            picture=_face(),
        )
        asyncio.run(
            service.publish(server.url, "dana", mallory_server_side, pub, device=False, timeout=10)
        )
        # another picture replaces the file (as a compromised server could): readers notice
        other = visual.scramble_png(
            visual.prepare_picture(_face()), visual.new_key(), visual.new_salt()
        )
        path = "/v1/u/dana/picture"
        header = sign_inbox_request(
            mallory_server_side, "PUT", path, hashlib.sha256(other).hexdigest()
        )
        assert (
            client.put(
                path, content=other, headers={"x-kez-auth": header, "content-type": "image/png"}
            ).status_code
            == 200
        )
    from kez_core.profile.signed_profile import PictureMismatch

    with pytest.raises(PictureMismatch):
        asyncio.run(service.read_peer_profile(tmp_path, server.url, "dana", "example.org"))


def test_kind0_is_read_back_by_nostr_sdk(tmp_path) -> None:
    nostr_sdk = pytest.importorskip("nostr_sdk")
    from kez_channel_nostr.relay import send_event
    from kez_channel_nostr.testing import running_relay

    alice = Signer.generate("nostr")
    pub = service.make_publication(
        alice,
        alice.key_id,
        "https://kez.example",
        "alice",
        name="Alice ✨",
        about="line\nnext",
        picture=_face(),
    )
    event = service.kind0_event(alice.secret, read_profile(pub.profile))
    assert verify_event(event) and event["kind"] == 0
    with running_relay() as relay:
        reply = asyncio.run(send_event(relay.url, event, 10))
        assert reply.accepted, reply.message

        async def read() -> list:
            client = nostr_sdk.Client()
            await client.add_relay(nostr_sdk.RelayUrl.parse(relay.url))
            await client.connect()
            try:
                keys = nostr_sdk.PublicKey.parse(alice.key_id.partition(":")[2])
                wanted = nostr_sdk.Filter().author(keys).kind(nostr_sdk.Kind(0))
                return await client.fetch_events(
                    nostr_sdk.ReqTarget.auto([wanted]), timedelta(seconds=10)
                )
            finally:
                await client.shutdown()

        events = asyncio.run(read())
    assert len(events) == 1
    got = events[0]
    assert got.verify()
    metadata = nostr_sdk.Metadata.from_json(got.content()).as_record()
    assert metadata.name == "Alice ✨"
    assert metadata.about == "line\nnext"
    assert metadata.picture == read_profile(pub.profile).picture
    assert "#kez-visual-v1:" in metadata.picture
