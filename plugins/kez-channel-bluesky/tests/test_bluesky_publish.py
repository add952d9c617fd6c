"""Publishing through the real atproto SDK (createSession + putRecord) against the local fake PDS."""

from __future__ import annotations

import pytest
from bluesky_helpers import checks, compact_claim, run
from kez_channel_bluesky.channel import COLLECTION
from kez_channel_bluesky.errors import BlueskyCredentialsError, BlueskyPublishError
from kez_core.claim import create_claim
from kez_core.encoding import encode
from kez_core.errors import DecodeError, ExitCode
from kez_core.protocols import ChannelContext
from kez_core.status import Status

HANDLE = "alice.test"
SUBJECT = f"bluesky:{HANDLE}"


def publish_ctx(server, handle=HANDLE, **extra) -> ChannelContext:
    return ChannelContext(options={**server.ctx_options(handle), **extra}, timeout=10)


def test_publish_then_fetch(bsky_server, bsky_channel, bsky_ctx, bsky_signer):
    did = bsky_server.add_account(HANDLE)
    claim = compact_claim(bsky_signer, SUBJECT)
    outcome = run(bsky_channel.publish(HANDLE, claim, publish_ctx(bsky_server)))
    assert outcome.location == f"at://{did}/{COLLECTION}/self"
    assert "bafyrei" in outcome.detail

    record = bsky_server.get_record(did, COLLECTION, "self")
    assert record["$type"] == COLLECTION
    assert record["claim"] == claim
    assert record["createdAt"].endswith("Z")
    paths = [path.split("?")[0] for _, path in bsky_server.requests]
    assert "/xrpc/com.atproto.server.createSession" in paths
    assert "/xrpc/com.atproto.repo.putRecord" in paths

    fetched = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    [check] = checks(fetched)
    assert check.status is Status.VALID and check.primary == bsky_signer.key_id


def test_publish_replaces_the_record(bsky_server, bsky_channel, bsky_ctx, bsky_signer):
    did = bsky_server.add_account(HANDLE)
    first, second = (compact_claim(bsky_signer, SUBJECT) for _ in range(2))
    run(bsky_channel.publish(HANDLE, first, publish_ctx(bsky_server)))
    run(bsky_channel.publish(HANDLE, second, publish_ctx(bsky_server)))
    assert bsky_server.get_record(did, COLLECTION, "self")["claim"] == second


def test_publish_by_did_with_identifier_and_pds_options(bsky_server, bsky_channel, bsky_signer):
    did = bsky_server.add_account(HANDLE)
    account = bsky_server.account(did)
    ctx = publish_ctx(
        bsky_server, bluesky_identifier=account.email, atproto_pds=bsky_server.base_url
    )
    claim = compact_claim(bsky_signer, f"bluesky:{did}")
    outcome = run(bsky_channel.publish(did, claim, ctx))
    assert outcome.location == f"at://{did}/{COLLECTION}/self"
    # With --atproto-pds the channel goes straight to the PDS: no resolution.
    assert not any("resolveHandle" in p or p.startswith("/did:") for _, p in bsky_server.requests)


def test_publish_other_encodings_are_stored_compact(bsky_server, bsky_channel, bsky_signer):
    did = bsky_server.add_account(HANDLE)
    claim = create_claim(bsky_signer, SUBJECT)
    run(bsky_channel.publish(HANDLE, encode(claim, "markdown"), publish_ctx(bsky_server)))
    assert bsky_server.get_record(did, COLLECTION, "self")["claim"] == encode(claim, "compact")


def test_publish_garbage_is_decode_error(bsky_server, bsky_channel):
    bsky_server.add_account(HANDLE)
    with pytest.raises(DecodeError):
        run(bsky_channel.publish(HANDLE, "not a claim", publish_ctx(bsky_server)))
    assert bsky_server.requests == []


def test_publish_without_credentials(bsky_server, bsky_channel, bsky_ctx, bsky_signer):
    bsky_server.add_account(HANDLE)
    with pytest.raises(BlueskyCredentialsError) as info:
        run(bsky_channel.publish(HANDLE, compact_claim(bsky_signer, SUBJECT), bsky_ctx))
    assert "--bluesky-app-password" in info.value.hint
    assert "KEZ_BLUESKY_APP_PASSWORD" in info.value.hint
    assert (
        info.value.exit_code == ExitCode.STORE
    )  # CredentialsError: the same code in every channel
    assert bsky_server.requests == []


def test_publish_wrong_password(bsky_server, bsky_channel, bsky_signer):
    bsky_server.add_account(HANDLE, "right-pass-word-0000")
    ctx = ChannelContext(
        options={**bsky_server.ctx_options(), "bluesky_app_password": "wrong"}, timeout=10
    )
    with pytest.raises(BlueskyCredentialsError) as info:
        run(bsky_channel.publish(HANDLE, compact_claim(bsky_signer, SUBJECT), ctx))
    assert "Invalid identifier or password" in info.value.message


def test_publish_logged_in_as_someone_else(bsky_server, bsky_channel, bsky_signer):
    bsky_server.add_account(HANDLE)
    bsky_server.add_account("bob.test")
    ctx = ChannelContext(
        options={**bsky_server.ctx_options("bob.test"), "bluesky_identifier": "bob.test"},
        timeout=10,
    )
    with pytest.raises(BlueskyCredentialsError, match="logged in as bob.test"):
        run(bsky_channel.publish(HANDLE, compact_claim(bsky_signer, SUBJECT), ctx))
    assert bsky_server.get_record(HANDLE, COLLECTION, "self") is None


def test_publish_unknown_handle(bsky_server, bsky_channel, bsky_signer):
    bsky_server.add_account("bob.test")
    ctx = ChannelContext(
        options={**bsky_server.ctx_options(), "bluesky_app_password": "x"}, timeout=10
    )
    with pytest.raises(BlueskyPublishError, match="does not resolve"):
        run(bsky_channel.publish(HANDLE, compact_claim(bsky_signer, SUBJECT), ctx))


def test_publish_pds_down(bsky_channel, bsky_signer, bsky_closed_url):
    ctx = ChannelContext(
        options={"atproto_pds": bsky_closed_url, "bluesky_app_password": "x"}, timeout=5
    )
    with pytest.raises(BlueskyPublishError, match="cannot reach") as info:
        run(bsky_channel.publish(HANDLE, compact_claim(bsky_signer, SUBJECT), ctx))
    assert info.value.exit_code == ExitCode.NETWORK


@pytest.mark.parametrize(("status", "words"), [(429, "rate limited"), (500, "failed")])
def test_publish_server_refuses_write(bsky_server, bsky_channel, bsky_signer, status, words):
    did = bsky_server.add_account(HANDLE)
    bsky_server.fail_next(1, status, path="putRecord", retry_after=60)
    with pytest.raises(BlueskyPublishError, match=words):
        run(
            bsky_channel.publish(
                HANDLE, compact_claim(bsky_signer, SUBJECT), publish_ctx(bsky_server)
            )
        )
    assert bsky_server.get_record(did, COLLECTION, "self") is None
