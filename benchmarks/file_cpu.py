"""A file alice → bob with no network: where `send_file` and `receive_many` spend CPU (issue 12 §9).

Both services share one throwaway keystore; alice's `send_file` goes through
an in-memory transport that keeps the envelope texts, then bob takes them
with `receive_many` in batches (as `kez message listen` does) until his copy
is assembled, SHA-256 checked and saved. Times are wall seconds of each side
on one thread (no transport, no concurrency), so send + receive is the CPU
a file costs; `--profile send|receive` prints cProfile's top entries of one
side instead. Compare with benchmarks/messaging_e2e.py's file part (real
NATS, bob in his own thread). Results: benchmarks/README.md; measured
2026-12-06 21:10 UTC at load 2.1-2.6, two runs, 10 MiB: h6-fileperf with
NATS-sized envelopes (`--max-envelope 699122`, 22 envelopes) send
0.07-0.08 s, receive 0.07-0.12 s; main in the same minute (109 envelopes)
0.25-0.28 s and 0.50-0.55 s. At load 4.4 (20:44): with 128 KiB envelopes
(82) 0.15-0.28 s and 0.20-0.29 s.

Run: uv run python benchmarks/file_cpu.py [--file-mb 10] [--batch 16] [--max-envelope N] [--profile send]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from kez_cli.demo_messaging import ensure_inbox
from kez_core.chat import MessagingService, Route
from kez_core.keystore import Keystore
from kez_core.messaging.envelope import MAX_ENVELOPE_TEXT
from kez_core.protocols import ChannelContext
from kez_core.registry import default_registry


class Memory:
    """A transport that keeps what it is given."""

    name = "memory"
    options = ()

    def __init__(self, max_envelope: int) -> None:
        self.max_envelope = max_envelope
        self.sent: list[bytes] = []

    async def send(self, routing_id: str, envelope: bytes, ctx: Any) -> None:
        self.sent.append(envelope)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file-mb", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=16, help="envelopes per receive_many")
    parser.add_argument("--max-envelope", type=int, default=MAX_ENVELOPE_TEXT)
    parser.add_argument("--profile", choices=("send", "receive"), default=None)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    registry = default_registry()
    with tempfile.TemporaryDirectory(prefix="kez-filecpu-") as tmp:
        store = Keystore(Path(tmp), registry)
        ensure_inbox(store, "alice")
        ensure_inbox(store, "bob")
        alice = MessagingService(store, store.get("alice"), lambda: None)
        bob = MessagingService(
            store, store.get("bob"), lambda: None, save_dir=Path(tmp) / "bob-files"
        )
        peer = asyncio.run(alice.resolve_peer(store.get("bob").identity_id))
        size = int(args.file_mb * 1024 * 1024)
        data = os.urandom(size)
        path = Path(tmp) / "bench.bin"
        path.write_bytes(data)
        wire = Memory(args.max_envelope)
        bob.secrets(), bob.store, bob.replay, alice.store  # opened before the clock starts
        prof = cProfile.Profile()

        t0 = time.perf_counter()
        if args.profile == "send":
            prof.enable()
        asyncio.run(alice.send_file(peer, path, [Route("memory", wire, ChannelContext())]))
        prof.disable()
        t1 = time.perf_counter()
        if args.profile == "receive":
            prof.enable()
        last: dict[str, Any] = {}
        for start in range(0, len(wire.sent), args.batch):
            for result in bob.receive_many(wire.sent[start : start + args.batch]):
                file = getattr(result, "file", None)
                if file and file.get("state") in ("complete", "corrupt"):
                    last = file
        prof.disable()
        t2 = time.perf_counter()
        ok = last.get("state") == "complete" and Path(last["path"]).read_bytes() == data
        mb = size / 1e6
        print(
            f"{size:,} bytes in {len(wire.sent)} envelopes (largest {max(map(len, wire.sent)):,} chars),"
            f" batch {args.batch}: send {t1 - t0:.3f} s ({mb / (t1 - t0):.1f} MB/s),"
            f" receive {t2 - t1:.3f} s ({mb / (t2 - t1):.1f} MB/s), intact: {ok}"
        )
        if args.profile:
            pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)
        alice.close()
        bob.close()


if __name__ == "__main__":
    main()
