"""Reading proofs through the real channel code against the local Mastodon-shaped server."""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
import pytest
from ap_helpers import (
    CHANNEL,
    DOMAIN,
    closed_port_url,
    compact_claim,
    expired_claim,
    fetch,
    objects,
    run,
    tampered_claim,
)
from kez_core.claim import check_claim
from kez_core.encoding import decode_any
from kez_core.errors import DecodeError
from kez_core.keys import Signer
from kez_core.protocols import ChannelContext
from kez_core.status import Status

HANDLE = f"alice@{DOMAIN}"
SUBJECT = f"ap:{HANDLE}"


def only_claim(outcome):
    found = objects(outcome)
    assert len(found) == 1, outcome
    return found[0]


# ---------------------------------------------------------------- verdicts


def test_valid_proof_in_profile_field(ap_server, ap_signer):
    proof = compact_claim(ap_signer, SUBJECT)
    ap_server.set_fields("alice", [("Website", "https://example.org/~alice"), ("KEZ", proof)])
    outcome = fetch(ap_server, HANDLE)
    assert outcome.reachable, outcome.reason
    assert outcome.source == f"https://{DOMAIN}/users/Alice"
    assert len(outcome.candidates) == 1
    candidate = outcome.candidates[0]
    assert candidate.text == proof
    assert "profile field 'KEZ'" in candidate.source
    result = check_claim(decode_any(candidate.text)[0])
    assert result.status is Status.VALID, result.reason
    assert result.primary == ap_signer.key_id
    assert result.subject == SUBJECT


def test_wrong_key_is_valid_signature_by_another_identity(ap_server, ap_signer):
    other = Signer.generate("nostr")
    ap_server.seed_proof("alice", compact_claim(other, SUBJECT))
    result = check_claim(only_claim(fetch(ap_server, HANDLE)))
    assert result.status is Status.VALID
    assert result.primary == other.key_id
    assert result.primary != ap_signer.key_id


def test_tampered_proof_is_invalid(ap_server, ap_signer):
    ap_server.seed_proof("alice", tampered_claim(ap_signer, SUBJECT))
    result = check_claim(only_claim(fetch(ap_server, HANDLE)))
    assert result.status is Status.INVALID


def test_expired_claim(ap_server, ap_signer):
    ap_server.seed_proof("alice", expired_claim(ap_signer, SUBJECT))
    result = check_claim(only_claim(fetch(ap_server, HANDLE)))
    assert result.status is Status.EXPIRED


def test_broken_token_is_a_candidate_that_does_not_decode(ap_server, ap_signer):
    proof = compact_claim(ap_signer, SUBJECT)
    ap_server.seed_proof("alice", proof[:255])  # what stock Mastodon keeps of a long field value
    outcome = fetch(ap_server, HANDLE)
    assert outcome.reachable and len(outcome.candidates) == 1
    with pytest.raises(DecodeError):
        decode_any(outcome.candidates[0].text)


# ----------------------------------------------------------- where it lives


def test_proof_in_summary_only(ap_server, ap_signer):
    proof = compact_claim(ap_signer, SUBJECT)
    ap_server.set_fields("alice", [("Pronouns", "she/her")])
    ap_server.set_note("alice", f"Hello, I write about birds.\n\n{proof}\nSee you & bye <3")
    outcome = fetch(ap_server, HANDLE)
    assert outcome.reachable
    assert [c.source.endswith("(summary)") for c in outcome.candidates] == [True]
    assert "See you & bye <3" in outcome.candidates[0].text  # entities unescaped
    result = check_claim(only_claim(outcome))
    assert result.status is Status.VALID and result.primary == ap_signer.key_id


def test_summary_paragraphs_do_not_glue_to_the_token(ap_server, ap_signer):
    proof = compact_claim(ap_signer, SUBJECT)
    ap_server.set_summary("alice", f"<p>intro</p><p>{proof}</p><p>Zzz trailing words</p>")
    result = check_claim(only_claim(fetch(ap_server, HANDLE)))
    assert result.status is Status.VALID


def test_proof_split_by_span_tags_is_rejoined(ap_server, ap_signer):
    proof = compact_claim(ap_signer, SUBJECT)
    split = (
        f'<span class="invisible"></span><span class="ellipsis">{proof[:30]}</span>'
        f'<span class="invisible">{proof[30:200]}</span><span>{proof[200:]}</span>'
    )
    ap_server.set_fields_html("alice", [("KEZ", split)])
    outcome = fetch(ap_server, HANDLE)
    assert outcome.candidates[0].text == proof
    assert check_claim(only_claim(outcome)).status is Status.VALID


def test_proof_inside_a_link_rendered_like_mastodon(ap_server, ap_signer):
    """A URL value is rendered as <a><span class="invisible">https://</span>… — the token survives."""
    proof = compact_claim(ap_signer, SUBJECT)
    ap_server.set_fields("alice", [("Proof", f"https://keys.example/{proof}")])
    outcome = fetch(ap_server, HANDLE)
    html_value = ap_server._actor(DOMAIN, ap_server._accounts["alice"])["attachment"][0]["value"]
    visible = re.sub(r'href="[^"]*"', "", html_value)
    assert (
        '<span class="invisible">' in visible and proof not in visible
    )  # the text really is split
    assert outcome.candidates[0].text == f"https://keys.example/{proof}"
    assert check_claim(only_claim(outcome)).status is Status.VALID


def test_mastodon_alias_subject(ap_server, ap_signer):
    proof = compact_claim(ap_signer, "mastodon:@Alice@Mastodon.Example")
    claim = decode_any(proof)[0]
    assert claim.payload["subject"] == SUBJECT
    ap_server.seed_proof("alice", proof)
    outcome = fetch(ap_server, "@Alice@Mastodon.Example")  # any spelling of the handle
    result = check_claim(only_claim(outcome))
    assert result.status is Status.VALID and result.subject == SUBJECT


def test_split_domain_instance(ap_server, ap_signer):
    """Handles on example.org, server on social.example.org: WebFinger redirects, the actor lives on the web domain."""
    ap_server.set_split_domain("example.org", "social.example.org")
    ap_server.seed_proof("alice", compact_claim(ap_signer, "ap:alice@example.org"))
    outcome = fetch(ap_server, "alice@example.org")
    assert outcome.source == "https://social.example.org/users/Alice"
    result = check_claim(only_claim(outcome))
    assert result.status is Status.VALID and result.subject == "ap:alice@example.org"
    hosts = [host for _, host, _ in ap_server.requests]
    assert hosts == ["example.org", "social.example.org", "social.example.org"]


# ------------------------------------------------------------------ missing


def test_proof_missing(ap_server):
    ap_server.set_fields("alice", [("Website", "https://example.org"), ("Pronouns", "she/her")])
    ap_server.set_note("alice", "just a bio")
    outcome = fetch(ap_server, HANDLE)
    assert outcome.reachable is True
    assert outcome.candidates == ()
    assert "2 profile field(s)" in outcome.reason and "summary" in outcome.reason


def test_unknown_account_is_not_found(ap_server):
    outcome = fetch(ap_server, f"nobody@{DOMAIN}")
    assert outcome.reachable is True and outcome.candidates == ()
    assert "404" in outcome.reason and "nobody@" in outcome.reason


def test_actor_on_another_host_is_refused(ap_server, ap_signer):
    ap_server.seed_proof("alice", compact_claim(ap_signer, SUBJECT))
    ap_server.set_actor_host("alice", "evil.example")
    outcome = fetch(ap_server, HANDLE)
    assert outcome.reachable is True and outcome.candidates == ()
    assert "evil.example" in outcome.reason and "refused" in outcome.reason


def test_webfinger_for_another_user_is_refused(ap_server, ap_signer):
    ap_server.seed_proof("alice", compact_claim(ap_signer, SUBJECT))
    other = {
        "subject": f"acct:mallory@{DOMAIN}",
        "links": [
            {
                "rel": "self",
                "type": "application/activity+json",
                "href": f"https://{DOMAIN}/users/Alice",
            }
        ],
    }
    ap_server.fail_next(1, 200, body=json.dumps(other).encode(), path="/.well-known/")
    outcome = fetch(ap_server, HANDLE)
    assert outcome.reachable is True and outcome.candidates == ()
    assert "mallory" in outcome.reason


def test_actor_with_another_preferred_username_is_refused(ap_server, ap_signer):
    ap_server.add_account("mallory")
    ap_server.seed_proof("mallory", compact_claim(ap_signer, SUBJECT))
    actor = ap_server._actor(DOMAIN, ap_server._accounts["mallory"])
    ap_server.fail_next(1, 200, body=json.dumps(actor).encode(), path="/users/")
    outcome = fetch(ap_server, HANDLE)
    assert outcome.reachable is True and outcome.candidates == ()
    assert "preferredUsername" in outcome.reason and "mallory" in outcome.reason


def test_actor_id_on_another_host_is_refused(ap_server, ap_signer):
    ap_server.seed_proof("alice", compact_claim(ap_signer, SUBJECT))
    actor = ap_server._actor(DOMAIN, ap_server._accounts["alice"])
    actor["id"] = "https://evil.example/users/Alice"
    ap_server.fail_next(1, 200, body=json.dumps(actor).encode(), path="/users/")
    outcome = fetch(ap_server, HANDLE)
    assert outcome.reachable is True and outcome.candidates == ()
    assert "evil.example" in outcome.reason


# ------------------------------------------------------------- unreachable


def test_server_down():
    class Down:
        def ctx_options(self):
            return {"ap_base_url": closed_port_url()}

    outcome = fetch(Down(), HANDLE, timeout=3)
    assert outcome.reachable is False
    assert DOMAIN in outcome.reason and "could not be reached" in outcome.reason


def test_timeout(ap_server, ap_signer):
    ap_server.seed_proof("alice", compact_claim(ap_signer, SUBJECT))
    ap_server.delay_next(1, 6.0)
    started = time.monotonic()
    outcome = fetch(ap_server, HANDLE, timeout=1.0)
    elapsed = time.monotonic() - started
    assert outcome.reachable is False
    assert "did not answer within 1s" in outcome.reason
    assert elapsed < 4.0


def test_timeout_on_actor_counts_the_whole_fetch(ap_server, ap_signer):
    ap_server.seed_proof("alice", compact_claim(ap_signer, SUBJECT))
    ap_server.delay_next(1, 6.0, path="/users/")
    outcome = fetch(ap_server, HANDLE, timeout=1.0)
    assert outcome.reachable is False
    assert outcome.source == f"https://{DOMAIN}/users/Alice"


def test_429_with_retry_after(ap_server):
    ap_server.fail_next(1, 429, headers={"Retry-After": "30"})
    outcome = fetch(ap_server, HANDLE)
    assert outcome.reachable is False
    assert outcome.retry_after == 30.0
    assert "429 rate limit" in outcome.reason and "retry later" in outcome.reason


def test_429_with_mastodon_rate_limit_reset(ap_server):
    from datetime import UTC, datetime, timedelta

    reset = (datetime.now(UTC) + timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    ap_server.fail_next(
        1, 429, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}, path="/users/"
    )
    outcome = fetch(ap_server, HANDLE)
    assert outcome.reachable is False
    assert outcome.retry_after is not None and 60 < outcome.retry_after <= 121
    assert "resets" in outcome.reason and "UTC" in outcome.reason


@pytest.mark.parametrize("path", ["/.well-known/", "/users/"])
@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx(ap_server, path, status):
    ap_server.fail_next(1, status, path=path)
    outcome = fetch(ap_server, HANDLE)
    assert outcome.reachable is False
    assert str(status) in outcome.reason
    assert outcome.retry_after is None


@pytest.mark.parametrize("path", ["/.well-known/", "/users/"])
def test_malformed_body(ap_server, path):
    ap_server.malform_next(1, path=path)
    outcome = fetch(ap_server, HANDLE)
    assert outcome.reachable is False
    assert "malformed" in outcome.reason


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",
        b'{"links": {"rel": "self"}}',
        b"\xff\xfe\x00",
        b'{"links": [{"rel": "self", "type": 5}]}',
    ],
)
def test_odd_webfinger_documents_never_raise(ap_server, body):
    ap_server.fail_next(1, 200, body=body, path="/.well-known/")
    outcome = fetch(ap_server, HANDLE)
    assert isinstance(outcome.reachable, bool)
    assert outcome.candidates == ()


def test_actor_requires_signed_fetch(ap_server, ap_signer):
    ap_server.seed_proof("alice", compact_claim(ap_signer, SUBJECT))
    ap_server.require_signed_fetch()
    outcome = fetch(ap_server, HANDLE)
    assert outcome.reachable is False
    assert "401" in outcome.reason and "requires signed fetches" in outcome.reason


def test_oversized_body_is_unreachable(ap_server):
    ap_server.fail_next(1, 200, body=b"{" + b" " * (2 << 20) + b"}", path="/users/")
    outcome = fetch(ap_server, HANDLE)
    assert outcome.reachable is False and "KiB" in outcome.reason


# ---------------------------------------------------------- request shapes


def test_requests_keep_the_handles_host(ap_server, ap_signer):
    ap_server.seed_proof("alice", compact_claim(ap_signer, SUBJECT))
    fetch(ap_server, HANDLE)
    (m1, host1, path1), (m2, host2, path2) = ap_server.requests
    assert (m1, host1) == ("GET", DOMAIN)
    assert path1 == "/.well-known/webfinger?resource=acct%3Aalice%40mastodon.example"
    assert (m2, host2, path2) == ("GET", DOMAIN, "/users/Alice")


def test_bad_handle_raises_decode_error():
    with pytest.raises(DecodeError):
        run(CHANNEL.fetch("not a handle", ChannelContext()))


def test_many_concurrent_fetches_shared_and_own_clients(ap_signer):
    """The engine fetches 16 at once per channel; the server and both client modes keep up."""
    from kez_channel_activitypub.testing import running_server

    with running_server(latency=0.05) as server:
        users = [f"user{i}" for i in range(60)]
        for user in users:
            server.add_account(user)
            server.seed_proof(user, compact_claim(ap_signer, f"ap:{user}@{DOMAIN}"))

        async def all_of_them(client):
            ctx = ChannelContext(options=server.ctx_options(), timeout=20, http_client=client)
            slots = asyncio.Semaphore(16)

            async def one(user):
                async with slots:
                    return await CHANNEL.fetch(f"{user}@{DOMAIN}", ctx)

            return await asyncio.gather(*(one(u) for u in users))

        async def shared():
            async with httpx.AsyncClient() as client:
                return await all_of_them(client)

        started = time.monotonic()
        outcomes = run(shared()) + run(all_of_them(None))
        assert time.monotonic() - started < 20
    assert all(o.reachable and len(o.candidates) == 1 for o in outcomes)
    assert {check_claim(only_claim(o)).status for o in outcomes} == {Status.VALID}


def test_a_run_leases_a_client_per_fetch_in_flight_and_closes_them_at_its_end(ap_signer):
    """Within a verification run (`ctx.scope`) a fetch borrows one of the run's clients, whose
    connections stay open for the next fetch; the run's end closes them all."""
    from kez_channel_activitypub.testing import running_server
    from kez_core.verifier import RunScope

    with running_server() as server:
        users = [f"user{i}" for i in range(6)]
        for user in users:
            server.add_account(user)
            server.seed_proof(user, compact_claim(ap_signer, f"ap:{user}@{DOMAIN}"))

        async def go():
            scope = RunScope(concurrency=4)
            ctx = ChannelContext(options=server.ctx_options(), timeout=5, scope=scope)
            one_by_one = [await CHANNEL.fetch(f"{u}@{DOMAIN}", ctx) for u in users]
            [client] = scope.idle(("ap", "httpx"))  # one fetch at a time: one client, kept open
            assert not client.is_closed
            at_once = await asyncio.gather(*(CHANNEL.fetch(f"{u}@{DOMAIN}", ctx) for u in users))
            clients = scope.idle(("ap", "httpx"))
            assert client in clients and 1 < len(clients) <= len(users)
            await scope.aclose()
            assert all(c.is_closed for c in clients)
            return one_by_one + list(at_once)

        outcomes = run(go())
    assert all(o.reachable and len(o.candidates) == 1 for o in outcomes)
    assert {check_claim(o).status for obj in outcomes for o in objects(obj)} == {Status.VALID}
