"""Run one channel's local test server in its own process (for benchmarks/graph.py).

    python _channel_server.py CHANNEL LATENCY SEEDS.json

Starts the server from the channel distribution's `testing` module, seeds
the proofs listed in SEEDS.json, prints the ChannelContext options that
point at it as one JSON line, and serves until its stdin closes. A process
per server keeps the servers' Python work off the verifying process's GIL,
as real remote services would be.
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack


def seed(channel: str, server, seeds: list[dict]) -> dict:
    if channel == "dns":
        for s in seeds:
            server.seed_proof(s["domain"], s["proof"])
        return server.ctx_options()
    if channel == "github":
        for s in seeds:
            server.add_user(s["user"])
            server.seed_proof(s["user"], s["proof"])
        return server.ctx_options()
    if channel == "ap":
        for s in seeds:
            server.add_account(s["user"])
            server.seed_proof(s["user"], s["proof"], where="summary")
        return server.ctx_options()
    if channel == "bluesky":
        for s in seeds:
            server.seed_proof(s["handle"], s["proof"])
        return server.ctx_options()
    if channel == "nostr":
        for s in seeds:
            server.seed_proof(bytes.fromhex(s["secret"]), s["proof"])
        return server.ctx_options()
    raise SystemExit(f"unknown channel {channel}")


def main() -> None:
    channel, latency, seeds_path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    module = {
        "dns": "kez_channel_dns.testing",
        "github": "kez_channel_github.testing",
        "ap": "kez_channel_activitypub.testing",
        "bluesky": "kez_channel_bluesky.testing",
        "nostr": "kez_channel_nostr.testing",
    }[channel]
    testing = __import__(module, fromlist=["running_server"])
    with open(seeds_path) as handle:
        seeds = json.load(handle)
    with ExitStack() as stack:
        server = stack.enter_context(testing.running_server(latency=latency))
        options = seed(channel, server, seeds)
        sys.stdout.write(json.dumps(options) + "\n")
        sys.stdout.flush()
        sys.stdin.read()  # serve until the benchmark closes our stdin


if __name__ == "__main__":
    main()
