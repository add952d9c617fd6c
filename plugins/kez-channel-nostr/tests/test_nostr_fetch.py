"""Reading proofs through the real channel code from a real nostr-relay (and its fault front)."""

from __future__ import annotations

import asyncio
import time

import nostr_helpers
import pytest
from nostr_helpers import (
    CHANNEL,
    NostrAccount,
    checks,
    claim_text,
    ctx,
    expired_text,
    fetch,
    tampered_text,
)

from kez_channel_nostr.channel import PROOF_KIND
from kez_core import nip19
from kez_core.errors import DecodeError
from kez_core.keys import Signer
from kez_core.nostr_event import sign_event
from kez_core.status import Status


@pytest.fixture(autouse=True, params=["per call", "run scope"])
def fetch_mode(request, monkeypatch):
    """Every test here runs twice: a lone fetch, and a fetch within a verification run's scope."""
    monkeypatch.setattr(nostr_helpers, "SCOPED", request.param == "run scope")
    return request.param


@pytest.fixture
def identity():
    return Signer.generate("ed25519")


@pytest.fixture
def account():
    return NostrAccount.new()


# ------------------------------------------------------------------ verdicts


def test_valid_proof(nostr_server, identity, account):
    event = nostr_server.seed_proof(account.secret, claim_text(identity, account))
    outcome = fetch(account.pubkey, nostr_server.ctx_options())
    assert outcome.reachable
    assert len(outcome.candidates) == 1
    candidate = outcome.candidates[0]
    assert candidate.source == f"{nostr_server.url} event {event['id']}"
    assert candidate.fetched_at.tzinfo is not None
    assert nostr_server.url in outcome.source and account.pubkey in outcome.source
    [check] = checks(outcome)
    assert check.status is Status.VALID, check.reason
    assert check.primary == identity.key_id
    assert check.subject == account.subject


def test_npub_and_uppercase_handles_read_the_same_proof(nostr_server, identity, account):
    nostr_server.seed_proof(account.secret, claim_text(identity, account))
    npub = nip19.encode("npub", bytes.fromhex(account.pubkey))
    for handle in (npub, account.pubkey.upper()):
        outcome = fetch(handle, nostr_server.ctx_options())
        assert [c.status for c in checks(outcome)] == [Status.VALID]


def test_wrong_key_is_valid_but_names_another_primary(nostr_server, identity, account):
    stranger = Signer.generate("nostr")
    nostr_server.seed_proof(account.secret, claim_text(stranger, account))
    [check] = checks(fetch(account.pubkey, nostr_server.ctx_options()))
    assert check.status is Status.VALID
    assert check.primary == stranger.key_id
    assert check.primary != identity.key_id


def test_tampered_proof_is_invalid(nostr_server, identity, account):
    nostr_server.seed_proof(account.secret, tampered_text(identity, account))
    [check] = checks(fetch(account.pubkey, nostr_server.ctx_options()))
    assert check.status is Status.INVALID


def test_expired_claim(nostr_server, identity, account):
    nostr_server.seed_proof(account.secret, expired_text(identity, account))
    [check] = checks(fetch(account.pubkey, nostr_server.ctx_options()))
    assert check.status is Status.EXPIRED


def test_proof_missing(nostr_server, account):
    outcome = fetch(account.pubkey, nostr_server.ctx_options())
    assert outcome.reachable
    assert outcome.candidates == ()
    assert account.pubkey in outcome.reason and nostr_server.url in outcome.reason


def test_bad_handle_is_a_decode_error(nostr_server):
    with pytest.raises(DecodeError):
        fetch("not-a-nostr-key", nostr_server.ctx_options())


# ------------------------------------------------------------ what is read


def test_request_shape_and_close(nostr_server, identity, account):
    nostr_server.seed_proof(account.secret, claim_text(identity, account))
    fetch(account.pubkey, nostr_server.ctx_options())
    wanted = {"authors": [account.pubkey], "kinds": [30078], "#d": ["kez"], "limit": 10}
    [req] = [m for m in nostr_server.client_messages if m[0] == "REQ" and m[2:] == [wanted]]
    deadline = time.monotonic() + 5  # the front logs in its own thread, maybe after we return
    while ["CLOSE", req[1]] not in nostr_server.client_messages and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ["CLOSE", req[1]] in nostr_server.client_messages


def test_broken_signature_is_ignored(nostr_server, identity, account):
    good = sign_event(account.secret, PROOF_KIND, claim_text(identity, account), [["d", "kez"]])
    changed_content = {**good, "content": claim_text(Signer.generate(), account)}
    bad_sig = {**good, "sig": ("0" if good["sig"][0] != "0" else "1") + good["sig"][1:]}
    nostr_server.inject_events(changed_content, bad_sig, {"not": "an event"}, "junk")
    outcome = fetch(account.pubkey, nostr_server.ctx_options())
    assert outcome.reachable
    assert outcome.candidates == ()
    assert "3 events bad id or signature" in outcome.reason
    assert "1 event not an event object" in outcome.reason


def test_events_of_other_authors_kinds_and_tags_are_ignored(nostr_server, identity, account):
    other = NostrAccount.new()
    text = claim_text(identity, account)
    nostr_server.inject_events(
        sign_event(other.secret, PROOF_KIND, text, [["d", "kez"]]),
        sign_event(account.secret, 1, text, [["d", "kez"]]),
        sign_event(account.secret, PROOF_KIND, text, [["d", "other"], ["d", "kez"]]),
        sign_event(account.secret, PROOF_KIND, text, []),
    )
    real = nostr_server.seed_proof(account.secret, text)
    outcome = fetch(account.pubkey, nostr_server.ctx_options())
    assert [c.source.rsplit(" ", 1)[1] for c in outcome.candidates] == [real["id"]]
    assert "1 event by another key" in outcome.reason
    assert "1 event of another kind than 30078" in outcome.reason
    assert "2 events without the d=kez tag" in outcome.reason


def test_distinct_events_newest_first(nostr_server, identity, account):
    old_text = claim_text(identity, account)
    new_text = claim_text(identity, account)
    stamp = int(time.time())
    old = nostr_server.seed_proof(account.secret, old_text, created_at=stamp - 100)
    new = sign_event(account.secret, PROOF_KIND, new_text, [["d", "kez"]], stamp)
    nostr_server.inject_events(old, new)  # the relay's copy of `old` arrives as well: one candidate
    outcome = fetch(account.pubkey, nostr_server.ctx_options())
    assert [c.text for c in outcome.candidates] == [new_text, old_text]
    assert all(c.status is Status.VALID for c in checks(outcome))


def test_relays_given_as_one_comma_separated_string(nostr_server, identity, account):
    nostr_server.seed_proof(account.secret, claim_text(identity, account))
    options = {"nostr_relays": f" {nostr_server.refused_url} ,{nostr_server.url},"}
    outcome = fetch(account.pubkey, options)
    assert len(outcome.candidates) == 1


# ------------------------------------------------------------------- faults


def test_two_relays_one_down_still_found(nostr_server, identity, account):
    nostr_server.seed_proof(account.secret, claim_text(identity, account))
    outcome = fetch(account.pubkey, {"nostr_relays": (nostr_server.refused_url, nostr_server.url)})
    assert outcome.reachable
    assert [c.status for c in checks(outcome)] == [Status.VALID]
    assert f"{nostr_server.refused_url} refused the connection" in outcome.reason


def test_two_relays_one_down_nothing_there_is_not_found(nostr_server, account):
    outcome = fetch(account.pubkey, nostr_server.ctx_options(nostr_server.refused_url))
    assert outcome.reachable and outcome.candidates == ()
    assert "1 of 2 relays answered" in outcome.reason


def test_server_down(nostr_server, account):
    outcome = fetch(account.pubkey, {"nostr_relays": (nostr_server.refused_url,)})
    assert not outcome.reachable
    assert "refused the connection" in outcome.reason
    assert outcome.retry_after is None


def test_timeout_on_a_silent_relay(nostr_server, account):
    started = time.monotonic()
    outcome = fetch(account.pubkey, {"nostr_relays": (nostr_server.silent_url,)}, timeout=1.0)
    elapsed = time.monotonic() - started
    assert not outcome.reachable
    assert "no answer within 1 s" in outcome.reason
    assert elapsed < 1.0 + 4.0


def test_timeout_on_the_main_relay_while_another_answers(nostr_server, identity, account):
    nostr_server.seed_proof(account.secret, claim_text(identity, account))
    nostr_server.silence_next()
    options = {"nostr_relays": (nostr_server.url, nostr_server.relay_url)}
    outcome = fetch(account.pubkey, options, timeout=1.0)
    assert outcome.reachable and len(outcome.candidates) == 1
    assert f"{nostr_server.url} no answer within 1 s" in outcome.reason


def test_rate_limited_with_retry_after(nostr_server, account):
    nostr_server.fail_next(1, 429, retry_after=30)
    outcome = fetch(account.pubkey, nostr_server.ctx_options())
    assert not outcome.reachable
    assert outcome.retry_after == 30
    assert "429" in outcome.reason and "rate limit" in outcome.reason


def test_server_error(nostr_server, account):
    nostr_server.fail_next(1, 503)
    outcome = fetch(account.pubkey, nostr_server.ctx_options())
    assert not outcome.reachable
    assert "HTTP 503" in outcome.reason
    assert outcome.retry_after is None


@pytest.mark.parametrize("how", ["fixed address", "next connection"])
def test_malformed_answer(nostr_server, account, how):
    if how == "fixed address":
        options = {"nostr_relays": (nostr_server.malformed_url,)}
    else:
        nostr_server.malformed_next()
        options = nostr_server.ctx_options()
    outcome = fetch(account.pubkey, options)
    assert not outcome.reachable
    assert "malformed" in outcome.reason


def test_closed_subscription(nostr_server, account):
    nostr_server.refuse_next(reason="auth-required: members only")
    outcome = fetch(account.pubkey, nostr_server.ctx_options())
    assert not outcome.reachable
    assert "closed the subscription: auth-required: members only" in outcome.reason


def test_no_relays_and_bad_relay_urls_are_answers_not_exceptions(account):
    outcome = fetch(account.pubkey, {"nostr_relays": ()})
    assert not outcome.reachable and "KEZ_NOSTR_RELAYS" in outcome.reason
    outcome = fetch(account.pubkey, {"nostr_relays": ("https://relay.example", "wss://")})
    assert not outcome.reachable
    assert "is not a ws:// or wss:// URL" in outcome.reason and "has no host" in outcome.reason


def test_default_relays_when_option_absent():
    from kez_channel_nostr.channel import DEFAULT_RELAYS, relay_urls

    assert relay_urls(ctx({})) == list(DEFAULT_RELAYS)
    assert relay_urls(ctx({"nostr_relays": None})) == list(DEFAULT_RELAYS)


# ------------------------------------------------------------------ latency


def test_latency_is_added_to_answers(nostr_server, identity, account):
    nostr_server.seed_proof(account.secret, claim_text(identity, account))
    nostr_server.latency = 0.3
    started = time.monotonic()
    outcome = fetch(account.pubkey, nostr_server.ctx_options())
    assert time.monotonic() - started >= 0.3
    assert len(outcome.candidates) == 1


def test_a_hundred_concurrent_fetches_with_latency(nostr_server, identity):
    accounts = [NostrAccount.new() for _ in range(100)]
    for account in accounts[:20]:
        nostr_server.seed_proof(account.secret, claim_text(identity, account))
    nostr_server.latency = 0.05
    context = ctx(nostr_server.ctx_options(), timeout=20)

    async def all_of_them():
        return await asyncio.gather(*(CHANNEL.fetch(a.pubkey, context) for a in accounts))

    outcomes = asyncio.run(all_of_them())
    assert all(o.reachable for o in outcomes), [o.reason for o in outcomes if not o.reachable][:3]
    assert sum(1 for o in outcomes if o.candidates) == 20
