"""Within a verification run (`ctx.scope`) the channel keeps a few WebSockets per relay open
for the whole run and multiplexes every proof's subscription over them."""

from __future__ import annotations

import asyncio
import time

import attrs
from nostr_helpers import CHANNEL, NostrAccount, checks, claim_text, ctx

from kez_channel_nostr import relay
from kez_core.keys import Signer
from kez_core.status import Status
from kez_core.verifier import RunScope


def in_a_run(options, handles, *, timeout=10.0, concurrency=16, during=None):
    """Fetch every handle at once within one run scope; (outcomes, pools of the run)."""

    async def go():
        scope = RunScope(concurrency=concurrency)
        context = attrs.evolve(ctx(options, timeout), scope=scope)
        try:
            fetches = asyncio.gather(*(CHANNEL.fetch(h, context) for h in handles))
            if during is not None:
                watcher = asyncio.create_task(during(scope))
                outcomes = await fetches
                watcher.cancel()
            else:
                outcomes = await fetches
            pools = [v for k, v in scope._items.items() if k[:2] == ("nostr", "relay")]
            return outcomes, pools
        finally:
            await scope.aclose()

    return asyncio.run(go())


def wait_for_message(server, message, seconds=5.0):
    deadline = time.monotonic() + seconds  # the front logs in its own thread
    while message not in server.client_messages and time.monotonic() < deadline:
        time.sleep(0.01)
    return message in server.client_messages


def test_a_run_uses_a_few_connections_for_many_proofs(nostr_server):
    signer = Signer.generate("ed25519")
    accounts = [NostrAccount.new() for _ in range(60)]
    for account in accounts[:20]:
        nostr_server.seed_proof(account.secret, claim_text(signer, account))
    nostr_server.latency = 0.05
    before = nostr_server.connections
    outcomes, _ = in_a_run(nostr_server.ctx_options(), [a.pubkey for a in accounts], concurrency=32)
    assert all(o.reachable for o in outcomes), [o.reason for o in outcomes if not o.reachable][:3]
    assert [bool(o.candidates) for o in outcomes] == [True] * 20 + [False] * 40
    assert all(c.status is Status.VALID for o in outcomes[:20] for c in checks(o))
    assert nostr_server.connections - before <= 2  # 32 at once, 16 subscriptions a connection
    reqs = [m for m in nostr_server.client_messages if m[0] == "REQ"]
    assert len(reqs) >= 60
    assert all(wait_for_message(nostr_server, ["CLOSE", m[1]]) for m in reqs[-60:])


def test_subscriptions_per_connection_are_capped(nostr_server):
    accounts = [NostrAccount.new() for _ in range(40)]
    nostr_server.latency = 0.1
    most = 0

    async def watch(scope):
        nonlocal most
        while True:
            for key, pool in list(scope._items.items()):
                if key[:2] == ("nostr", "relay"):
                    for connection in pool._connections:
                        most = max(most, len(connection.subscriptions))
            await asyncio.sleep(0.005)

    outcomes, [pool] = in_a_run(
        nostr_server.ctx_options(), [a.pubkey for a in accounts], concurrency=16, during=watch
    )
    assert all(o.reachable and not o.candidates for o in outcomes)
    assert len(pool._connections) == 1
    assert 1 <= most <= relay.SUBSCRIPTIONS_PER_CONNECTION


def test_a_broken_connection_is_replaced_for_the_next_proof(nostr_server):
    account = NostrAccount.new()
    nostr_server.seed_proof(account.secret, claim_text(Signer.generate("ed25519"), account))
    nostr_server.malformed_next()

    async def go():
        scope = RunScope()
        context = attrs.evolve(ctx(nostr_server.ctx_options()), scope=scope)
        try:
            first = await CHANNEL.fetch(account.pubkey, context)
            second = await CHANNEL.fetch(account.pubkey, context)
            return first, second
        finally:
            await scope.aclose()

    before = nostr_server.connections
    first, second = asyncio.run(go())
    assert not first.reachable and "malformed" in first.reason
    assert second.reachable and [c.status for c in checks(second)] == [Status.VALID]
    assert nostr_server.connections - before == 2


def test_a_proof_given_up_on_closes_its_subscription(nostr_server):
    account = NostrAccount.new()
    nostr_server.silence_next()
    [outcome], _ = in_a_run(nostr_server.ctx_options(), [account.pubkey], timeout=0.5)
    assert not outcome.reachable and "no answer within 0.5 s" in outcome.reason
    [req] = [
        m
        for m in nostr_server.client_messages
        if m[0] == "REQ" and m[2]["authors"] == [account.pubkey]
    ]
    assert wait_for_message(nostr_server, ["CLOSE", req[1]])


def test_handshake_failure_reaches_every_waiting_proof_with_retry_after(nostr_server):
    accounts = [NostrAccount.new() for _ in range(5)]
    nostr_server.fail_next(1, 429, retry_after=30)
    outcomes, _ = in_a_run(nostr_server.ctx_options(), [a.pubkey for a in accounts])
    # One handshake for the run's connection: its refusal is every waiting proof's answer.
    assert all(not o.reachable and o.retry_after == 30 and "429" in o.reason for o in outcomes)


def test_relays_are_pooled_separately(nostr_server):
    account = NostrAccount.new()
    nostr_server.seed_proof(account.secret, claim_text(Signer.generate("ed25519"), account))
    options = {"nostr_relays": (nostr_server.refused_url, nostr_server.url)}
    [outcome], pools = in_a_run(options, [account.pubkey])
    assert outcome.reachable and len(outcome.candidates) == 1
    assert f"{nostr_server.refused_url} refused the connection" in outcome.reason
    assert sorted(p.url for p in pools) == sorted([nostr_server.refused_url, nostr_server.url])
