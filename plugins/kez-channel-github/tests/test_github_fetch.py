"""Reading proofs through the real channel code against the local fake GitHub API."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from github_helpers import CHANNEL, checks, claim, context, fetch, markdown, run, tampered

from kez_channel_github.testing import running_server
from kez_core.encoding import decode_any, encode
from kez_core.errors import DecodeError
from kez_core.protocols import ChannelContext
from kez_core.status import Status

# ------------------------------------------------------------------ verdicts


def test_valid_proof(github):
    signer, obj = claim()
    gist = github.seed_proof("Alice", markdown(obj))  # GitHub keeps the login's spelling
    outcome = fetch(github, "@ALICE")
    assert outcome.reachable, outcome.reason
    assert outcome.source == f"{github.base_url}/users/alice/gists"
    (candidate,) = outcome.candidates
    assert candidate.source == f"{gist['html_url']}#kez-proof.md"
    assert candidate.fetched_at.tzinfo is not None
    assert abs((datetime.now(UTC) - candidate.fetched_at).total_seconds()) < 60
    (decoded,) = decode_any(candidate.text)
    assert decoded.id == obj.id
    (result,) = checks(outcome)
    assert result.status is Status.VALID
    assert result.primary == signer.key_id
    assert result.subject == "github:alice"


def test_wrong_key_is_valid_claim_of_another_identity(github):
    mine, _ = claim()
    other, obj = claim()  # a valid claim for github:alice, made by someone else
    github.seed_proof("alice", markdown(obj))
    (result,) = checks(fetch(github))
    assert result.status is Status.VALID
    assert result.primary == other.key_id
    assert result.primary != mine.key_id


def test_tampered_proof_is_invalid(github):
    _, obj = claim()
    github.seed_proof("alice", markdown(tampered(obj)))
    (result,) = checks(fetch(github))
    assert result.status is Status.INVALID


def test_expired_claim(github):
    _, obj = claim(created_at=datetime.now(UTC) - timedelta(days=3), expires_in=timedelta(days=1))
    github.seed_proof("alice", markdown(obj))
    (result,) = checks(fetch(github))
    assert result.status is Status.EXPIRED


def test_several_proof_files_are_several_candidates(github):
    _, first = claim()
    _, second = claim()
    files = {"kez-proof.md": markdown(first), "other.md": encode(second, "compact")}
    github.add_gist("alice", files)
    outcome = fetch(github)
    assert {c.source.rsplit("#", 1)[1] for c in outcome.candidates} == {"kez-proof.md", "other.md"}
    assert {r.claim_id for r in checks(outcome)} == {first.id, second.id}


# ----------------------------------------------------------------- not found


def test_proof_missing(github):
    github.add_gist("alice", {"notes.md": "# nothing to see here\n" * 10})
    github.add_gist("alice", {"script.py": "print('hello')\n" * 10})
    outcome = fetch(github)
    assert outcome.reachable
    assert outcome.candidates == ()
    assert "alice" in outcome.reason and "```kez" in outcome.reason


def test_user_without_gists(github):
    github.add_user("alice")
    outcome = fetch(github)
    assert outcome.reachable and outcome.candidates == ()
    assert "no public gists" in outcome.reason


def test_unknown_user_is_not_found(github):
    outcome = fetch(github, "bob")
    assert outcome.reachable
    assert outcome.candidates == ()
    assert outcome.reason == "no GitHub user bob"


def test_secret_gist_is_not_listed_and_not_a_proof(github):
    _, obj = claim()
    github.add_gist("alice", {"kez-proof.md": markdown(obj)}, public=False)
    listed = httpx.get(f"{github.base_url}/users/alice/gists").json()
    assert listed == []  # GitHub lists only public gists to others
    outcome = fetch(github)
    assert outcome.reachable and outcome.candidates == ()
    # even with the owner's own token (which lists secret gists) a secret gist proves nothing
    token = github.token_for("alice")
    owner_view = httpx.get(
        f"{github.base_url}/users/alice/gists", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert [g["public"] for g in owner_view] == [False]
    outcome = fetch(github, token=token)
    assert outcome.reachable and outcome.candidates == ()


def test_gist_of_another_user_is_not_read(github):
    _, obj = claim()
    github.seed_proof("bob", markdown(obj))
    github.add_user("alice")
    assert fetch(github).candidates == ()


def test_bad_handle_is_decode_error(github):
    with pytest.raises(DecodeError):
        run(CHANNEL.fetch("not a user!", context(github)))


# ------------------------------------------------------- where proofs are found


def test_proof_on_the_second_page(github):
    signer, obj = claim()
    github.seed_proof("alice", markdown(obj))  # oldest: GitHub lists newest first
    for number in range(100):
        github.add_gist("alice", {f"snippet{number}.py": f"print({number})\n" * 10})
    outcome = fetch(github)
    (result,) = checks(outcome)
    assert result.status is Status.VALID and result.primary == signer.key_id
    pages = [r.query for r in github.requests if r.path == "/users/alice/gists"]
    assert pages == ["per_page=100", "per_page=100&page=2"]


def test_pages_are_capped_at_ten(github):
    _, obj = claim()
    github.seed_proof("alice", markdown(obj))  # on page 12 of 100-gist pages
    for number in range(1100):
        github.add_gist("alice", {f"s{number}.txt": "x"})
    outcome = fetch(github)
    assert outcome.reachable and outcome.candidates == ()
    assert len([r for r in github.requests if r.path == "/users/alice/gists"]) == 10
    assert "10 pages" in outcome.reason


def test_proof_in_an_oddly_named_file_is_still_found(github):
    _, obj = claim()
    github.add_gist("alice", {"README.md": "# my dotfiles\n" * 10})
    github.add_gist("alice", {"identity.txt": markdown(obj)})
    outcome = fetch(github)
    (candidate,) = outcome.candidates
    assert candidate.source.endswith("#identity.txt")


def test_preferred_files_are_read_first_and_stop_the_search(github):
    _, obj = claim()
    for number in range(5):
        github.add_gist("alice", {f"tool{number}.py": "import os\n" * 20})
    proof = github.seed_proof("alice", markdown(obj))
    outcome = fetch(github)
    assert len(outcome.candidates) == 1
    reads = [r.path for r in github.requests if r.path.startswith("/gists/")]
    assert reads == [f"/gists/{proof['id']}"]


def test_truncated_file_is_read_from_raw_url(github):
    github.truncate_bytes = 200
    _, obj = claim()
    text = "x" * 500 + "\n\n" + markdown(obj)
    github.seed_proof("alice", text)
    outcome = fetch(github)
    (candidate,) = outcome.candidates
    assert candidate.text == text
    assert any(r.path.startswith("/raw/") for r in github.requests)
    raw = next(r for r in github.requests if r.path.startswith("/raw/"))
    assert "authorization" not in raw.headers


# -------------------------------------------------------------- what is sent


def test_request_headers_without_token(github):
    github.add_user("alice")
    fetch(github)
    (request,) = github.requests
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["x-github-api-version"] == "2022-11-28"
    assert request.headers["user-agent"] == "kez-python"
    assert "authorization" not in request.headers


def test_token_is_sent_on_reads_when_set(github):
    _, obj = claim()
    github.seed_proof("alice", markdown(obj))
    token = github.token_for("carol")
    outcome = fetch(github, token=token)
    assert len(outcome.candidates) == 1
    assert all(r.headers.get("authorization") == f"Bearer {token}" for r in github.requests)


def test_a_rejected_token_falls_back_to_anonymous_reads(github):
    _, obj = claim()
    github.seed_proof("alice", markdown(obj))
    outcome = fetch(github, token="ghp_not_a_real_token")
    assert outcome.reachable and len(outcome.candidates) == 1
    assert "refused the token" in outcome.reason
    statuses = [("authorization" in r.headers) for r in github.requests]
    assert statuses == [True, False, False]  # one refused read, then anonymous ones


def test_shared_http_client_is_used_and_left_open(github):
    _, obj = claim()
    github.seed_proof("alice", markdown(obj))

    async def go():
        async with httpx.AsyncClient() as client:
            ctx = ChannelContext(options=github.ctx_options(), timeout=5, http_client=client)
            outcome = await CHANNEL.fetch("alice", ctx)
            assert not client.is_closed
            return outcome

    assert len(run(go()).candidates) == 1


def test_default_options_point_at_api_github_com():
    (api,) = [o for o in CHANNEL.options if o.name == "github_api"]
    assert api.default == "https://api.github.com"
    (token,) = [o for o in CHANNEL.options if o.name == "github_token"]
    assert token.secret and token.env == "GITHUB_TOKEN" and token.flag == "--github-token"


# ------------------------------------------------------------------ failures


def test_server_down():
    with running_server() as github:
        options = github.ctx_options()
    outcome = run(CHANNEL.fetch("alice", ChannelContext(options=options, timeout=3)))
    assert not outcome.reachable
    assert "127.0.0.1" in outcome.reason


def test_timeout(github):
    github.add_user("alice")
    github.delay_next(1, 3.0)
    started = time.monotonic()
    outcome = fetch(github, timeout=0.5)
    elapsed = time.monotonic() - started
    assert not outcome.reachable
    assert "did not answer within 0.5 s" in outcome.reason
    assert elapsed < 2.5


def test_429_with_retry_after(github):
    github.add_user("alice")
    github.fail_next(1, 429, retry_after=30, message="You have exceeded a secondary rate limit.")
    outcome = fetch(github)
    assert not outcome.reachable
    assert outcome.retry_after == 30
    assert "429 rate limit" in outcome.reason and "retry after 30 s" in outcome.reason


def test_403_primary_rate_limit(github):
    github.add_user("alice")
    reset = github.rate_limit_next(1, status=403, reset_in=600)
    outcome = fetch(github)
    assert not outcome.reachable
    when = datetime.fromtimestamp(reset, UTC).strftime("%H:%M")
    assert outcome.reason == (
        f"{github.host} answered 403 rate limit (resets {when} UTC); "
        "set GITHUB_TOKEN or retry later"
    )
    assert outcome.retry_after is not None and 500 < outcome.retry_after <= 600


def test_429_primary_rate_limit(github):
    github.add_user("alice")
    github.rate_limit_next(1, status=429, reset_in=120)
    outcome = fetch(github)
    assert not outcome.reachable and "429 rate limit (resets" in outcome.reason
    assert 0 < outcome.retry_after <= 120


def test_enforced_rate_limit_of_the_fake(github):
    github.enforce_rate_limits = True
    github.rate_limits = {"unauthenticated": 2, "authenticated": 5000}
    _, obj = claim()
    github.seed_proof("alice", markdown(obj))
    assert len(fetch(github).candidates) == 1  # list + one gist: the 2 allowed requests
    outcome = fetch(github)
    assert not outcome.reachable
    pattern = r"answered 403 rate limit \(resets \d\d:\d\d UTC\); set GITHUB_TOKEN"
    assert re.search(pattern, outcome.reason)
    # a token has its own, larger allowance
    assert len(fetch(github, token=github.token_for("alice")).candidates) == 1


def test_plain_403_is_unreachable_not_missing(github):
    github.add_user("alice")
    github.fail_next(1, 403, message="Forbidden")
    outcome = fetch(github)
    assert not outcome.reachable and "403" in outcome.reason


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx(github, status):
    github.add_user("alice")
    github.fail_next(1, status)
    outcome = fetch(github)
    assert not outcome.reachable
    assert f"answered {status}" in outcome.reason


def test_5xx_on_the_gist_read(github):
    _, obj = claim()
    github.seed_proof("alice", markdown(obj))
    github.fail_next(1, 502, path="/gists/")
    outcome = fetch(github)
    assert not outcome.reachable and "502" in outcome.reason


def test_malformed_list_body(github):
    github.add_user("alice")
    github.malformed_next(1)
    outcome = fetch(github)
    assert not outcome.reachable
    assert "not JSON" in outcome.reason


def test_list_that_is_not_an_array(github):
    github.add_user("alice")
    github.malformed_next(1, body=b'{"message": "surprise"}')
    outcome = fetch(github)
    assert not outcome.reachable and "not a JSON array" in outcome.reason


def test_malformed_gist_body(github):
    _, obj = claim()
    github.seed_proof("alice", markdown(obj))
    github.malformed_next(1, path="/gists/", body=b'{"id": "x", "files": []}')
    outcome = fetch(github)
    assert not outcome.reachable and "malformed gist" in outcome.reason


def test_bad_api_option_is_unreachable_not_an_exception(github):
    ctx = ChannelContext(options={"github_api": "ftp://x"}, timeout=1)
    outcome = run(CHANNEL.fetch("alice", ctx))
    assert not outcome.reachable and "github_api" in outcome.reason


# --------------------------------------------------------------- under load


def test_many_concurrent_fetches_with_latency():
    with running_server(latency=0.05) as github:
        signers = {}
        for number in range(100):
            signer, obj = claim(f"github:user{number}")
            signers[f"user{number}"] = signer.key_id
            github.seed_proof(f"user{number}", markdown(obj))

        async def go():
            async with httpx.AsyncClient(limits=httpx.Limits(max_connections=200)) as client:
                ctx = ChannelContext(options=github.ctx_options(), timeout=20, http_client=client)
                return await asyncio.gather(*(CHANNEL.fetch(user, ctx) for user in signers))

        outcomes = run(go())
    for user, outcome in zip(signers, outcomes, strict=True):
        (result,) = checks(outcome)
        assert result.status is Status.VALID and result.primary == signers[user]


def test_whole_fetch_is_bounded(github):
    for number in range(201):  # three pages
        github.add_gist("alice", {f"s{number}.txt": "x"})
    github.delay_next(3, 0.8, path="/users/")
    started = time.monotonic()
    outcome = fetch(github, timeout=1.0)
    assert not outcome.reachable
    assert "did not finish answering within 2 s" in outcome.reason
    assert time.monotonic() - started < 4


def test_a_run_leases_a_client_per_fetch_in_flight_and_closes_them_at_its_end(github):
    """Within a verification run (`ctx.scope`) a fetch borrows one of the run's clients, whose
    connections stay open for the next fetch; the run's end closes them all."""
    from kez_core.verifier import RunScope

    users = [f"user{i}" for i in range(6)]
    for user in users:
        github.add_user(user)
        github.seed_proof(user, markdown(claim(f"github:{user}")[1]))

    async def go():
        scope = RunScope(concurrency=4)
        ctx = ChannelContext(options=github.ctx_options(), timeout=5, scope=scope)
        one_by_one = [await CHANNEL.fetch(user, ctx) for user in users]
        [client] = scope.idle(("github", "httpx"))  # one fetch at a time: one client, kept open
        assert not client.is_closed
        at_once = await asyncio.gather(*(CHANNEL.fetch(user, ctx) for user in users))
        clients = scope.idle(("github", "httpx"))
        assert client in clients and 1 < len(clients) <= len(users)
        await scope.aclose()
        assert all(c.is_closed for c in clients)
        return one_by_one + list(at_once)

    outcomes = run(go())
    assert all(len(o.candidates) == 1 for o in outcomes)
    assert {c.status for o in outcomes for c in checks(o)} == {Status.VALID}
