"""Verify one identity with 1,000 claims spread over the five channels' local servers.

Every server answers with LATENCY seconds added (default 0.05) and runs in
its own process. The wall time of `verify_identity` is printed next to the
serial lower bound (claims × latency: what checking one proof after another
would cost at the very least). Target (issue #5): <= 3 s for 1,000 claims.

Run: uv run python benchmarks/graph.py [--claims 1000] [--latency 0.05]
     [--concurrency 128] [--per-channel 48] [--channels dns,github,ap,bluesky,nostr]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
        return f"dns:user{i}.example.org", {"domain": f"user{i}.example.org"}, "dns"
    if channel == "github":
        return f"github:user{i}", {"user": f"user{i}"}, "markdown"
    if channel == "ap":
        return f"ap:user{i}@mastodon.example", {"user": f"user{i}"}, "compact"
    if channel == "bluesky":
        return f"bluesky:user{i}.bsky.example", {"handle": f"user{i}.bsky.example"}, "compact"
    key = Signer.generate("nostr", registry)
    return f"nostr:{key.key_id.split(':', 1)[1]}", {"secret": key.secret.hex()}, "compact"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--per-channel", type=int, default=48)
    parser.add_argument("--channels", default=",".join(CHANNELS))
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

    procs = []
    options: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for channel in channels:
                path = Path(tmp) / f"{channel}.json"
                path.write_text(json.dumps(seeds[channel]))
                procs.append(subprocess.Popen(
                    [sys.executable, str(HERE / "_channel_server.py"), channel, str(args.latency), str(path)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                ))
            for proc in procs:
                line = proc.stdout.readline()
                if not line:
                    raise SystemExit("a channel server failed to start")
                options.update(json.loads(line))
            ctx = ChannelContext(options=options, timeout=10.0)
            policy = FetchPolicy(concurrency=args.concurrency, per_channel=args.per_channel, timeout=10.0)
            start = time.perf_counter()
            report = asyncio.run(verify_identity(builder.state, registry=registry, ctx=ctx, policy=policy))
            wall = time.perf_counter() - start
        finally:
            for proc in procs:
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
    print(f"wall time         {wall:.2f} s")
    print(f"serial bound      {serial:.1f} s  (claims x latency)")
    print(f"speed-up          {serial / wall:.1f}x over the serial bound; target: wall <= 3 s")
    not_valid = [p.check for p in report.proofs if p.check.status.value != "valid"][:3]
    for check in not_valid:
        print(f"  e.g. {check.status.value}: {check.subject}: {check.reason}")


if __name__ == "__main__":
    main()
