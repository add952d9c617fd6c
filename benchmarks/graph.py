"""Verify one identity with 1,000 claims spread over the five channels' local servers.

Every server answers with LATENCY seconds added (default 0.05) and runs in
its own process. The wall time of `verify_identity` is printed next to the
serial lower bound (claims × latency: what checking one proof after another
would cost at the very least). Target (issue #5): <= 3 s for 1,000 claims.

Besides the wall time it prints the CPU the verifying process spent (per
proof: what decides how many proofs one core checks a second) and the CPU of
each server process (with its children: the nostr relay), since on a small
machine the servers share the cores with the client.

Run: uv run python benchmarks/graph.py [--claims 1000] [--latency 0.05]
     [--concurrency 128] [--per-channel 48] [--channels dns,github,ap,bluesky,nostr]
     [--cold] [--profile FILE]   (cProfile of the client side in CPU time, for `python -m pstats FILE`)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from kez_core.claim import create_claim
from kez_core.encoding import encode
from kez_core.keys import Signer
from kez_core.protocols import ChannelContext
from kez_core.registry import default_registry
from kez_core.sigchain import SigchainBuilder
from kez_core.verifier import FetchPolicy, verify_identity

HERE = Path(__file__).resolve().parent
CHANNELS = ("dns", "github", "ap", "bluesky", "nostr")


def plan(channel: str, i: int, registry):
    """(subject, seed fields, encoding) of claim i on a channel."""
    if channel == "dns":
        # The TXT record's character-strings hold the compact form (what the
        # channel publishes; the `dns` encoding's zone-file line is how to
        # type that record into a zone, not its content).
        return f"dns:user{i}.example.org", {"domain": f"user{i}.example.org"}, "compact"
    if channel == "github":
        return f"github:user{i}", {"user": f"user{i}"}, "markdown"
    if channel == "ap":
        return f"ap:user{i}@mastodon.example", {"user": f"user{i}"}, "compact"
    if channel == "bluesky":
        return f"bluesky:user{i}.bsky.example", {"handle": f"user{i}.bsky.example"}, "compact"
    key = Signer.generate("nostr", registry)
    return f"nostr:{key.key_id.split(':', 1)[1]}", {"secret": key.secret.hex()}, "compact"


def _ticks(pid: int) -> int:
    """utime + stime of a process in clock ticks (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc; just `pid` elsewhere)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(parents.get(current, ()))
    return out


def _server_cpu(procs: dict[str, subprocess.Popen]) -> dict[str, int]:
    return {name: sum(_ticks(pid) for pid in _tree(proc.pid)) for name, proc in procs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--per-channel", type=int, default=48)
    parser.add_argument("--channels", default=",".join(CHANNELS))
    parser.add_argument(
        "--profile", metavar="FILE", help="write a cProfile of verify_identity to FILE"
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="no warm-up: the timed run also pays the channels' first imports and TLS context",
    )
    args = parser.parse_args()
    channels = [c for c in args.channels.split(",") if c]
    registry = default_registry()

    primary = Signer.generate("ed25519", registry)
    builder = SigchainBuilder(registry=registry)
    seeds: dict[str, list[dict]] = {c: [] for c in channels}
    for i in range(args.claims):
        channel = channels[i % len(channels)]
        subject, fields, form = plan(channel, i, registry)
        claim = create_claim(primary, subject, registry=registry)
        builder.claim(primary, claim)
        seeds[channel].append({**fields, "proof": encode(claim, form, registry)})
    # A warm-up identity with one claim per channel (other accounts), checked
    # before the clock starts: the first fetch of a channel imports its I/O
    # modules (httpx, dnspython, websockets) and builds the TLS context, once
    # per process.
    warm_primary = Signer.generate("ed25519", registry)
    warm = SigchainBuilder(registry=registry)
    for k, channel in enumerate(channels):
        subject, fields, form = plan(channel, args.claims + k, registry)
        claim = create_claim(warm_primary, subject, registry=registry)
        warm.claim(warm_primary, claim)
        seeds[channel].append({**fields, "proof": encode(claim, form, registry)})

    procs: dict[str, subprocess.Popen] = {}
    options: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for channel in channels:
                path = Path(tmp) / f"{channel}.json"
                path.write_text(json.dumps(seeds[channel]))
                procs[channel] = subprocess.Popen(
                    [
                        sys.executable,
                        str(HERE / "_channel_server.py"),
                        channel,
                        str(args.latency),
                        str(path),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            for proc in procs.values():
                line = proc.stdout.readline()
                if not line:
                    raise SystemExit("a channel server failed to start")
                options.update(json.loads(line))
            ctx = ChannelContext(options=options, timeout=10.0)
            policy = FetchPolicy(
                concurrency=args.concurrency, per_channel=args.per_channel, timeout=10.0
            )
            warm_wall = None
            if not args.cold:
                started = time.perf_counter()
                asyncio.run(verify_identity(warm.state, registry=registry, ctx=ctx, policy=policy))
                warm_wall = time.perf_counter() - started
            run = verify_identity(builder.state, registry=registry, ctx=ctx, policy=policy)
            profiler = cProfile.Profile(time.process_time) if args.profile else None
            servers_before = _server_cpu(procs)
            cpu_start = time.process_time()
            start = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            report = asyncio.run(run)
            if profiler is not None:
                profiler.disable()
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
            servers_after = _server_cpu(procs)
            if profiler is not None:
                profiler.dump_stats(args.profile)
        finally:
            for proc in procs.values():
                try:
                    proc.stdin.close()
                    proc.wait(timeout=20)
                except Exception:  # noqa: BLE001
                    proc.kill()
    counts = Counter(p.check.status.value for p in report.proofs)
    serial = args.claims * args.latency
    print(f"claims            {args.claims} over {', '.join(channels)}")
    print(f"added latency     {args.latency * 1000:.0f} ms per response")
    print(f"statuses          {dict(counts)}")
    if warm_wall is not None:
        print(
            f"warm-up           {warm_wall:.2f} s  (a claim per channel, untimed: first imports, TLS context)"
        )
    else:
        print("warm-up           none (--cold): the wall time includes the first imports")
    print(f"wall time         {wall:.2f} s")
    print(f"client CPU        {cpu:.2f} s  ({cpu / max(1, args.claims) * 1000:.2f} ms per proof)")
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    used = {name: (servers_after[name] - servers_before[name]) / hz for name in procs}
    shown = ", ".join(f"{name} {seconds:.2f}" for name, seconds in used.items())
    print(f"servers' CPU      {sum(used.values()):.2f} s  ({shown})")
    print(f"serial bound      {serial:.1f} s  (claims x latency)")
    print(f"speed-up          {serial / wall:.1f}x over the serial bound; target: wall <= 3 s")
    not_valid = [p.check for p in report.proofs if p.check.status.value != "valid"][:3]
    for check in not_valid:
        print(f"  e.g. {check.status.value}: {check.subject}: {check.reason}")


if __name__ == "__main__":
    main()
