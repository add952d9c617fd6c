"""The plugin as the CLI sees it, and one connection per run (a real sealed message: the contract)."""

from __future__ import annotations

import asyncio
import json

from kez_cli.main import main as kez_main
from kez_core.protocols import ChannelContext
from kez_core.verifier.scope import RunScope
from kez_transport_nats.transport import NatsTransport


def test_kez_plugins_lists_the_nats_transport(capsys):
    assert kez_main(["plugins", "--load", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    nats = plugins["nats"]
    assert nats["distribution"] == "kez-transport-nats" and nats["state"] == "loaded"
    assert nats["provides"] == {"transport": ["nats"]}


def test_sends_of_one_run_share_one_connection(nats_server):
    transport, route = NatsTransport(), "ab" * 32
    envelopes = [b"kez:e1:" + bytes([65 + i]) * 1430 for i in range(5)]

    async def run() -> tuple[list[bytes], bool]:
        scope = RunScope()
        ctx = ChannelContext(options=nats_server.ctx_options(), timeout=5, scope=scope)
        plain = ChannelContext(options=nats_server.ctx_options(), timeout=5)
        async with transport.subscribe(route, plain) as incoming:
            await asyncio.gather(*(transport.send(route, e, ctx) for e in envelopes))
            (shared,) = scope._items.values()
            first = shared._conn
            await transport.send(route, envelopes[0], ctx)
            assert shared._conn is first and not first.closed
            got = [await asyncio.wait_for(anext(incoming), 5) for _ in range(6)]
            await scope.aclose()
            return got, first.closed

    got, closed_at_the_end = asyncio.run(run())
    assert sorted(got) == sorted(envelopes + envelopes[:1])
    assert closed_at_the_end
