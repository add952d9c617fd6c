"""Reading proofs: the real channel code against a real DNS server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from kez_core.claim import check_claim, create_claim
from kez_core.codec import compact_decode, compact_encode
from kez_core.encoding import decode_any
from kez_core.errors import DecodeError
from kez_core.protocols import ChannelContext, FetchOutcome
from kez_core.signed import SignedObject
from kez_core.status import Status
from kez_core.timefmt import now

from kez_channel_dns.testing import free_port, running_server


def run(coro):
    return asyncio.run(coro)


def decoded(outcome: FetchOutcome) -> list[SignedObject]:
    """Every candidate that decodes as a KEZ object (others are skipped, as the engine does)."""
    found = []
    for candidate in outcome.candidates:
        try:
            found.extend(decode_any(candidate.text))
        except DecodeError:
            continue
    return found


# ------------------------------------------------------------------ proofs


def test_valid_proof(dns_server, dns_channel, dns_ctx, dns_signer):
    claim = create_claim(dns_signer, "dns:example.org")
    dns_server.seed_proof("example.org", claim)
    outcome = run(dns_channel.fetch("Example.ORG.", dns_ctx))
    assert outcome.reachable
    [candidate] = outcome.candidates
    assert candidate.source == f"dns://{dns_server.address}/_kez.example.org?type=TXT"
    assert outcome.source == candidate.source
    assert abs((now() - candidate.fetched_at).total_seconds()) < 60
    [obj] = decode_any(candidate.text)
    assert obj == claim
    check = check_claim(obj)
    assert check.status is Status.VALID
    assert check.primary == dns_signer.key_id
    assert check.subject == "dns:example.org"
    assert dns_server.queries[-1][1:] == ("_kez.example.org", "TXT")


def test_wrong_key(dns_server, dns_channel, dns_ctx, dns_signer, dns_other_signer):
    # A valid claim for this subject, but made by another identity.
    dns_server.seed_proof("example.org", create_claim(dns_other_signer, "dns:example.org"))
    [obj] = decoded(run(dns_channel.fetch("example.org", dns_ctx)))
    check = check_claim(obj)
    assert check.status is Status.VALID
    assert check.primary == dns_other_signer.key_id
    assert check.primary != dns_signer.key_id


def test_tampered_proof(dns_server, dns_channel, dns_ctx, dns_signer):
    claim = create_claim(dns_signer, "dns:example.org")
    data = claim.to_dict()
    data["payload"] = {**data["payload"], "nonce": "0" * 32}
    tampered = SignedObject.from_dict(data)
    dns_server.seed_proof("example.org", compact_encode(tampered))
    [obj] = decoded(run(dns_channel.fetch("example.org", dns_ctx)))
    assert check_claim(obj).status is Status.INVALID


def test_expired_claim(dns_server, dns_channel, dns_ctx, dns_signer):
    claim = create_claim(
        dns_signer,
        "dns:example.org",
        created_at=now() - timedelta(days=3),
        expires_in=timedelta(days=1),
    )
    dns_server.seed_proof("example.org", claim)
    [obj] = decoded(run(dns_channel.fetch("example.org", dns_ctx)))
    assert check_claim(obj).status is Status.EXPIRED


def test_claim_split_over_several_strings_is_read_back_whole(
    dns_server, dns_channel, dns_ctx, dns_signer
):
    claim = create_claim(dns_signer, "dns:example.org")
    compact = compact_encode(claim)
    # Cut into uneven strings, all ≤ 255 bytes, as some zone tools do.
    parts = [compact[:100], compact[100:355], compact[355:]]
    assert len(compact) > 255 and all(0 < len(p) <= 255 for p in parts)
    dns_server.set_txt("_kez.example.org", parts)
    [candidate] = run(dns_channel.fetch("example.org", dns_ctx)).candidates
    assert candidate.text == compact
    assert compact_decode(candidate.text) == claim


def test_answers_over_512_bytes_come_in_one_udp_answer(
    dns_server, dns_channel, dns_ctx, dns_signer
):
    # Two proofs (~430 bytes each) are more than the 512 bytes plain DNS carries over
    # UDP: the resolver offers EDNS(0) payloads up to 1232 bytes, so the answer is not
    # truncated and no TCP retry follows.
    claims = [create_claim(dns_signer, "dns:example.org") for _ in range(2)]
    for claim in claims:
        dns_server.seed_proof("example.org", claim)
    assert sum(len(compact_encode(c)) for c in claims) > 512
    outcome = run(dns_channel.fetch("example.org", dns_ctx))
    assert sorted(o.id for o in decoded(outcome)) == sorted(c.id for c in claims)
    assert [q[0] for q in dns_server.queries] == ["udp"]


def test_large_rrset_falls_back_to_tcp(dns_server, dns_channel, dns_ctx, dns_signer):
    # Five proofs do not fit the 1232-byte EDNS UDP answer: the server truncates, the
    # resolver retries over TCP and gets every record whole.
    claims = [create_claim(dns_signer, "dns:example.org") for _ in range(5)]
    for claim in claims:
        dns_server.seed_proof("example.org", claim)
    outcome = run(dns_channel.fetch("example.org", dns_ctx))
    assert sorted(o.id for o in decoded(outcome)) == sorted(c.id for c in claims)
    transports = [q[0] for q in dns_server.queries]
    assert transports == ["udp", "tcp"]
    assert all(len(c.text) > 255 for c in outcome.candidates)


def test_other_txt_record_next_to_a_proof(dns_server, dns_channel, dns_ctx, dns_signer):
    claim = create_claim(dns_signer, "dns:example.org")
    dns_server.add_txt("_kez.example.org", ["v=spf1 ", "-all"])
    dns_server.seed_proof("example.org", claim)
    outcome = run(dns_channel.fetch("example.org", dns_ctx))
    texts = sorted(c.text for c in outcome.candidates)
    assert texts == sorted([compact_encode(claim), "v=spf1 -all"])
    assert decoded(outcome) == [claim]
    with pytest.raises(DecodeError):
        decode_any("v=spf1 -all")


def test_non_utf8_txt_record_is_a_candidate_not_an_error(dns_server, dns_channel, dns_ctx):
    dns_server.set_txt("_kez.example.org", [b"\xff\xfe binary"])
    outcome = run(dns_channel.fetch("example.org", dns_ctx))
    assert outcome.reachable
    [candidate] = outcome.candidates
    assert decoded(outcome) == []
    assert "binary" in candidate.text


def test_subdomain_and_idn_handles(dns_server, dns_channel, dns_ctx, dns_signer):
    claim = create_claim(dns_signer, "dns:bücher.example")
    dns_server.seed_proof("xn--bcher-kva.example", claim)
    [obj] = decoded(run(dns_channel.fetch("Bücher.example", dns_ctx)))
    assert obj == claim
    assert dns_server.queries[-1][1] == "_kez.xn--bcher-kva.example"


# ---------------------------------------------------------------- not found


def test_proof_missing_nxdomain(dns_server, dns_channel, dns_ctx):
    outcome = run(dns_channel.fetch("example.org", dns_ctx))
    assert outcome.reachable and outcome.candidates == ()
    assert "NXDOMAIN" in outcome.reason and "_kez.example.org" in outcome.reason


def test_proof_missing_no_txt_at_name(dns_server, dns_channel, dns_ctx):
    # The name exists (a record below it) but holds no TXT: NOERROR with no data.
    dns_server.set_txt("sel._kez.example.org", ["unrelated"])
    outcome = run(dns_channel.fetch("example.org", dns_ctx))
    assert outcome.reachable and outcome.candidates == ()
    assert "no TXT" in outcome.reason


def test_bad_handle_is_a_decode_error(dns_channel, dns_ctx):
    with pytest.raises(DecodeError):
        run(dns_channel.fetch("not a domain", dns_ctx))


# -------------------------------------------------------------- unreachable


def test_servfail_is_unreachable(dns_server, dns_channel, dns_ctx, dns_signer):
    dns_server.seed_proof("example.org", create_claim(dns_signer, "dns:example.org"))
    dns_server.servfail = True
    outcome = run(dns_channel.fetch("example.org", dns_ctx))
    assert not outcome.reachable and outcome.candidates == ()
    assert "SERVFAIL" in outcome.reason and dns_server.address in outcome.reason
    dns_server.servfail = False
    assert run(dns_channel.fetch("example.org", dns_ctx)).candidates


def test_refused_is_unreachable(dns_server, dns_channel, dns_ctx):
    # What a rate-limiting or misconfigured server answers; DNS has no Retry-After.
    dns_server.fail_next(1, "REFUSED")
    outcome = run(dns_channel.fetch("example.org", dns_ctx))
    assert not outcome.reachable
    assert "REFUSED" in outcome.reason
    assert outcome.retry_after is None


def test_one_failure_then_recovery(dns_server, dns_channel, dns_ctx, dns_signer):
    dns_server.seed_proof("example.org", create_claim(dns_signer, "dns:example.org"))
    dns_server.fail_next(1)
    assert not run(dns_channel.fetch("example.org", dns_ctx)).reachable
    assert len(run(dns_channel.fetch("example.org", dns_ctx)).candidates) == 1


def test_dropped_queries_time_out(dns_server, dns_channel):
    dns_server.drop = True
    ctx = ChannelContext(options=dns_server.ctx_options(), timeout=1.0)
    started = time.monotonic()
    outcome = run(dns_channel.fetch("example.org", ctx))
    elapsed = time.monotonic() - started
    assert not outcome.reachable
    assert "within 1 s" in outcome.reason
    assert elapsed < 1.0 + 3.0  # the lifetime, plus slack for a loaded machine


def test_latency_beyond_timeout_is_unreachable(dns_server, dns_channel, dns_signer):
    dns_server.seed_proof("example.org", create_claim(dns_signer, "dns:example.org"))
    dns_server.latency = 3.0
    ctx = ChannelContext(options=dns_server.ctx_options(), timeout=0.8)
    started = time.monotonic()
    outcome = run(dns_channel.fetch("example.org", ctx))
    assert not outcome.reachable
    assert time.monotonic() - started < 0.8 + 3.0


def test_malformed_answers_are_unreachable(dns_server, dns_channel):
    dns_server.malformed_next(50)
    ctx = ChannelContext(options=dns_server.ctx_options(), timeout=1.0)
    outcome = run(dns_channel.fetch("example.org", ctx))
    assert not outcome.reachable
    assert outcome.candidates == ()


def test_server_down_is_unreachable(dns_channel):
    ctx = ChannelContext(options={"dns_server": f"127.0.0.1:{free_port()}"}, timeout=1.0)
    started = time.monotonic()
    outcome = run(dns_channel.fetch("example.org", ctx))
    assert not outcome.reachable
    assert time.monotonic() - started < 1.0 + 3.0


@pytest.mark.parametrize("value", ["127.0.0.1:notaport", "127.0.0.1:70000", "a:b:c", "[::1"])
def test_malformed_server_option_is_unreachable_not_an_exception(dns_channel, value):
    outcome = run(dns_channel.fetch("example.org", ChannelContext(options={"dns_server": value})))
    assert not outcome.reachable
    assert "--dns-server" in outcome.reason


def test_second_server_answers_when_first_is_down(dns_server, dns_channel, dns_signer):
    dns_server.seed_proof("example.org", create_claim(dns_signer, "dns:example.org"))
    options = {"dns_server": f"127.0.0.1:{free_port()}, {dns_server.address}"}
    outcome = run(dns_channel.fetch("example.org", ChannelContext(options=options, timeout=5.0)))
    assert outcome.reachable and len(decoded(outcome)) == 1


def test_many_concurrent_fetches_with_latency(dns_channel, dns_signer):
    with running_server(latency=0.05) as server:
        domains = [f"d{i}.example.org" for i in range(100)]
        for domain in domains:
            server.seed_proof(domain, create_claim(dns_signer, f"dns:{domain}"))
        ctx = ChannelContext(options=server.ctx_options(), timeout=10.0)

        async def all_of_them():
            return await asyncio.gather(*(dns_channel.fetch(d, ctx) for d in domains))

        started = time.monotonic()
        outcomes = run(all_of_them())
        elapsed = time.monotonic() - started
    assert all(o.reachable and len(o.candidates) == 1 for o in outcomes)
    subjects = [decoded(o)[0].payload["subject"] for o in outcomes]
    assert subjects == [f"dns:{d}" for d in domains]
    assert elapsed < 8.0  # concurrent: far below 100 × 0.05 s in sequence plus overhead
