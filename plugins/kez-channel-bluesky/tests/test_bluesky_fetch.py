"""Reading proofs through the real channel code against the local fake PDS + PLC directory."""

from __future__ import annotations

import time

import httpx
import pytest
from bluesky_helpers import (
    checks,
    compact_claim,
    expired_compact_claim,
    run,
    tampered_compact_claim,
)
from kez_channel_bluesky.channel import COLLECTION
from kez_channel_bluesky.testing import running_server
from kez_core.errors import DecodeError
from kez_core.protocols import ChannelContext
from kez_core.status import Status

HANDLE = "alice.test"
SUBJECT = f"bluesky:{HANDLE}"


# ------------------------------------------------------------------ proofs found


def test_valid_proof_by_handle(bsky_server, bsky_channel, bsky_ctx, bsky_signer):
    did = bsky_server.seed_proof(HANDLE, compact_claim(bsky_signer, SUBJECT))
    outcome = run(bsky_channel.fetch("@Alice.Test", bsky_ctx))
    assert outcome.reachable
    assert [c.source for c in outcome.candidates] == [f"at://{did}/{COLLECTION}/self"]
    assert "com.atproto.repo.getRecord" in outcome.source
    [check] = checks(outcome)
    assert check.status is Status.VALID, check.reason
    assert check.primary == bsky_signer.key_id
    assert check.subject == SUBJECT


def test_valid_proof_by_did(bsky_server, bsky_channel, bsky_ctx, bsky_signer):
    did = bsky_server.add_account(HANDLE)
    subject = f"bluesky:{did}"
    bsky_server.seed_proof(HANDLE, compact_claim(bsky_signer, subject))
    outcome = run(bsky_channel.fetch(did, bsky_ctx))
    assert outcome.reachable
    [check] = checks(outcome)
    assert check.status is Status.VALID
    assert check.subject == subject
    # A DID needs no handle resolution: the resolver was never asked.
    assert not any("resolveHandle" in path for _, path in bsky_server.requests)


def test_valid_proof_on_did_web(bsky_server, bsky_channel, bsky_ctx, bsky_signer):
    did = bsky_server.add_account("web.test", did_web=True)
    assert did.startswith("did:web:localhost%3a")
    bsky_server.seed_proof("web.test", compact_claim(bsky_signer, "bluesky:web.test"))
    for handle in ("web.test", did):
        outcome = run(bsky_channel.fetch(handle, bsky_ctx))
        assert outcome.reachable, outcome.reason
        [check] = checks(outcome)
        assert check.status is Status.VALID
    assert any(path == "/.well-known/did.json" for _, path in bsky_server.requests)


def test_fallback_to_profile_description(bsky_server, bsky_channel, bsky_ctx, bsky_signer):
    did = bsky_server.add_account(HANDLE)
    claim = compact_claim(bsky_signer, SUBJECT)
    bsky_server.set_profile_description(did, f"Keys and things. Verify me: {claim} — thanks!")
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    assert outcome.reachable
    [candidate] = outcome.candidates
    assert candidate.source == f"at://{did}/app.bsky.actor.profile/self"
    [check] = checks(outcome)
    assert check.status is Status.VALID
    assert check.primary == bsky_signer.key_id


def test_record_is_read_before_profile(bsky_server, bsky_channel, bsky_ctx, bsky_signer):
    """The profile is only a fallback: with a claim record present it is not even read."""
    did = bsky_server.seed_proof(HANDLE, compact_claim(bsky_signer, SUBJECT))
    bsky_server.set_profile_description(did, compact_claim(bsky_signer, SUBJECT))
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    assert [c.source for c in outcome.candidates] == [f"at://{did}/{COLLECTION}/self"]
    assert not any("app.bsky.actor.profile" in path for _, path in bsky_server.requests)


def test_wrong_key(bsky_server, bsky_channel, bsky_ctx, bsky_signer, bsky_other_signer):
    bsky_server.seed_proof(HANDLE, compact_claim(bsky_other_signer, SUBJECT))
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    [check] = checks(outcome)
    assert check.status is Status.VALID  # a good signature ...
    assert check.primary == bsky_other_signer.key_id  # ... by someone else
    assert check.primary != bsky_signer.key_id


def test_tampered_proof(bsky_server, bsky_channel, bsky_ctx, bsky_signer):
    bsky_server.seed_proof(HANDLE, tampered_compact_claim(bsky_signer, SUBJECT))
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    assert outcome.reachable
    [check] = checks(outcome)
    assert check.status is Status.INVALID


def test_expired_claim(bsky_server, bsky_channel, bsky_ctx, bsky_signer):
    bsky_server.seed_proof(HANDLE, expired_compact_claim(bsky_signer, SUBJECT))
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    [check] = checks(outcome)
    assert check.status is Status.EXPIRED


def test_shared_http_client_is_used_and_left_open(bsky_server, bsky_channel, bsky_signer):
    bsky_server.seed_proof(HANDLE, compact_claim(bsky_signer, SUBJECT))

    async def go():
        async with httpx.AsyncClient() as client:
            ctx = ChannelContext(options=bsky_server.ctx_options(), timeout=5, http_client=client)
            first = await bsky_channel.fetch(HANDLE, ctx)
            second = await bsky_channel.fetch(HANDLE, ctx)
            assert not client.is_closed
            return first, second

    for outcome in run(go()):
        assert [c.status for c in checks(outcome)] == [Status.VALID]


def test_pds_option_overrides_did_document(bsky_channel, bsky_signer):
    """`atproto_pds` makes the channel read records from that PDS, not the DID document's."""
    with running_server() as directory, running_server() as other_pds:
        did = directory.add_account(HANDLE)
        other_pds.add_account(HANDLE, did=did)
        other_pds.seed_proof(HANDLE, compact_claim(bsky_signer, SUBJECT))
        options = {**directory.ctx_options(), "atproto_pds": other_pds.base_url + "/"}
        outcome = run(bsky_channel.fetch(HANDLE, ChannelContext(options=options, timeout=5)))
        assert [c.status for c in checks(outcome)] == [Status.VALID]
        assert outcome.source.startswith(other_pds.base_url + "/xrpc/")
        assert not any("getRecord" in path for _, path in directory.requests)


def test_many_concurrent_fetches_with_latency(bsky_channel, bsky_signer):
    import asyncio

    with running_server(latency=0.05) as server:
        handles = [f"user{i}.test" for i in range(60)]
        for handle in handles:
            server.seed_proof(handle, compact_claim(bsky_signer, f"bluesky:{handle}"))

        async def go():
            async with httpx.AsyncClient() as client:
                ctx = ChannelContext(options=server.ctx_options(), timeout=20, http_client=client)
                return await asyncio.gather(*(bsky_channel.fetch(h, ctx) for h in handles))

        outcomes = run(go())
    assert all(o.reachable and len(o.candidates) == 1 for o in outcomes)


# ---------------------------------------------------------------- nothing there


def test_proof_missing(bsky_server, bsky_channel, bsky_ctx):
    did = bsky_server.add_account(HANDLE)
    bsky_server.set_profile_description(did, "just a bio, no proof")
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    assert outcome.reachable
    assert outcome.candidates == ()
    assert "lat.kez.claim/self" in outcome.reason and did in outcome.reason


def test_record_without_claim_text(bsky_server, bsky_channel, bsky_ctx):
    did = bsky_server.add_account(HANDLE)
    bsky_server.put_record(did, COLLECTION, "self", {"$type": COLLECTION, "claim": 42})
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    assert outcome.reachable and outcome.candidates == ()
    assert "no claim text" in outcome.reason


def test_unknown_handle(bsky_server, bsky_channel, bsky_ctx):
    outcome = run(bsky_channel.fetch("nobody.test", bsky_ctx))
    assert outcome.reachable and outcome.candidates == ()
    assert "does not resolve" in outcome.reason
    assert "Unable to resolve handle" in outcome.reason


def test_unknown_did(bsky_server, bsky_channel, bsky_ctx):
    did = "did:plc:" + "a" * 24
    outcome = run(bsky_channel.fetch(did, bsky_ctx))
    assert outcome.reachable and outcome.candidates == ()
    assert "not registered" in outcome.reason


def test_handle_not_confirmed_by_did_document(bsky_server, bsky_channel, bsky_ctx, bsky_signer):
    """Bidirectional check: the DID document must list at://<handle>."""
    bsky_server.seed_proof(HANDLE, compact_claim(bsky_signer, SUBJECT), also_known_as=[])
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    assert outcome.reachable and outcome.candidates == ()
    assert "alsoKnownAs" in outcome.reason and f"at://{HANDLE}" in outcome.reason

    bsky_server.set_also_known_as(HANDLE, ["at://someone-else.test"])
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    assert outcome.candidates == () and "alsoKnownAs" in outcome.reason

    bsky_server.set_also_known_as(HANDLE, [f"at://{HANDLE.upper()}"])
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    assert [c.status for c in checks(outcome)] == [Status.VALID]


def test_bad_handle_is_decode_error(bsky_channel, bsky_ctx):
    for bad in ("", "alice", "did:plc:short", "a b.test"):
        with pytest.raises(DecodeError):
            run(bsky_channel.fetch(bad, bsky_ctx))


# ------------------------------------------------------------ cannot be asked


def test_server_down(bsky_channel, bsky_closed_url):
    options = {"atproto_resolver": bsky_closed_url, "atproto_plc": bsky_closed_url}
    outcome = run(bsky_channel.fetch(HANDLE, ChannelContext(options=options, timeout=5)))
    assert not outcome.reachable
    assert "cannot reach 127.0.0.1" in outcome.reason


def test_pds_down(bsky_server, bsky_channel, bsky_signer, bsky_closed_url):
    bsky_server.seed_proof(HANDLE, compact_claim(bsky_signer, SUBJECT))
    options = {**bsky_server.ctx_options(), "atproto_pds": bsky_closed_url}
    outcome = run(bsky_channel.fetch(HANDLE, ChannelContext(options=options, timeout=5)))
    assert not outcome.reachable and outcome.candidates == ()


def test_timeout(bsky_server, bsky_channel, bsky_signer):
    bsky_server.seed_proof(HANDLE, compact_claim(bsky_signer, SUBJECT))
    bsky_server.slow(10, path="getRecord")
    ctx = ChannelContext(options=bsky_server.ctx_options(), timeout=1.0)
    started = time.monotonic()
    outcome = run(bsky_channel.fetch(HANDLE, ctx))
    elapsed = time.monotonic() - started
    assert not outcome.reachable
    assert "did not answer within 1s" in outcome.reason
    assert elapsed < 5


def test_rate_limited_with_retry_after(bsky_server, bsky_channel, bsky_ctx):
    bsky_server.add_account(HANDLE)
    bsky_server.fail_next(1, 429, retry_after=30, path="resolveHandle")
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    assert not outcome.reachable
    assert outcome.retry_after == pytest.approx(30, abs=1)
    assert "429 rate limit" in outcome.reason and "retry later" in outcome.reason
    # the fault is used up: the next call goes through
    assert run(bsky_channel.fetch(HANDLE, bsky_ctx)).reachable


def test_rate_limited_with_bluesky_ratelimit_headers(
    bsky_server, bsky_channel, bsky_ctx, bsky_signer
):
    bsky_server.seed_proof(HANDLE, compact_claim(bsky_signer, SUBJECT))
    bsky_server.fail_next(2, 429, rate_limit_reset=120, path="getRecord")
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    assert not outcome.reachable
    assert outcome.retry_after is not None and 100 <= outcome.retry_after <= 121
    assert "resets" in outcome.reason


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(bsky_server, bsky_channel, bsky_ctx, status):
    bsky_server.add_account(HANDLE)
    bsky_server.fail_next(1, status)
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    assert not outcome.reachable
    assert str(status) in outcome.reason


def test_plc_directory_error(bsky_server, bsky_channel, bsky_ctx):
    did = bsky_server.add_account(HANDLE)
    bsky_server.fail_next(1, 503, path=f"/{did}", retry_after=7)
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    assert not outcome.reachable and outcome.retry_after == pytest.approx(7, abs=1)


def test_claim_record_unreadable_is_not_a_fallback(
    bsky_server, bsky_channel, bsky_ctx, bsky_signer
):
    """A failed read of the record is unreachable, even when the profile holds a claim."""
    did = bsky_server.seed_proof(HANDLE, compact_claim(bsky_signer, SUBJECT))
    bsky_server.set_profile_description(did, compact_claim(bsky_signer, SUBJECT))
    bsky_server.fail_next(1, 503, path="getRecord", body={"error": "x", "message": "y"})
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    assert not outcome.reachable and outcome.candidates == ()
    assert "503" in outcome.reason


def test_profile_unreadable(bsky_server, bsky_channel, bsky_ctx):
    bsky_server.add_account(HANDLE)
    bsky_server.fail_next(1, 502, path="app.bsky.actor.profile", body=b"<html>bad gateway</html>")
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    assert not outcome.reachable
    assert "502" in outcome.reason


@pytest.mark.parametrize("path", ["resolveHandle", "/did:plc:", "getRecord"])
def test_malformed_body(bsky_server, bsky_channel, bsky_ctx, bsky_signer, path):
    bsky_server.seed_proof(HANDLE, compact_claim(bsky_signer, SUBJECT))
    bsky_server.malformed_next(2, path=path)
    outcome = run(bsky_channel.fetch(HANDLE, bsky_ctx))
    assert not outcome.reachable
    assert "malformed" in outcome.reason


def test_resolver_that_does_not_serve_xrpc(bsky_server, bsky_channel):
    options = {**bsky_server.ctx_options(), "atproto_resolver": bsky_server.base_url + "/nothing"}
    outcome = run(bsky_channel.fetch(HANDLE, ChannelContext(options=options, timeout=5)))
    assert not outcome.reachable
    assert "is the URL of this service right?" in outcome.reason


def test_a_run_leases_clients_keeps_connections_alive_and_closes_them(bsky_channel, bsky_signer):
    """Within a verification run (`ctx.scope`) a fetch borrows one of the run's clients; its
    connection stays open for the next fetch (checked by the peer address the server saw,
    not by a timing that a loaded machine would break), and the run's end closes every client."""
    import asyncio

    from kez_core.verifier import RunScope

    with running_server() as server:
        handles = [f"user{i}.test" for i in range(10)]
        for handle in handles:
            server.seed_proof(handle, compact_claim(bsky_signer, f"bluesky:{handle}"))

        async def go():
            scope = RunScope(concurrency=4)
            ctx = ChannelContext(options=server.ctx_options(), timeout=5, scope=scope)
            await bsky_channel.fetch(handles[0], ctx)  # connects
            first = len(server.peers)
            one_by_one = [await bsky_channel.fetch(h, ctx) for h in handles]
            sequential_peers = set(server.peers[first - 1 :])
            [client] = scope.idle(("bluesky", "httpx"))
            assert not client.is_closed
            at_once = await asyncio.gather(*(bsky_channel.fetch(h, ctx) for h in handles))
            clients = scope.idle(("bluesky", "httpx"))
            assert client in clients and 1 < len(clients) <= len(handles)
            await scope.aclose()
            assert all(c.is_closed for c in clients)
            return one_by_one + list(at_once), sequential_peers

        outcomes, sequential_peers = run(go())
    assert all(o.reachable and len(o.candidates) == 1 for o in outcomes)
    # 30 requests one after another, every one on the first fetch's kept-alive connection.
    assert len(sequential_peers) == 1, sequential_peers
