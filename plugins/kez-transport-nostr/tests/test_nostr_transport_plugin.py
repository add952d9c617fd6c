"""Registration, options and a real message end to end over the nostr transport."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from kez_cli.channel_options import declared_options, parse_channel_args
from kez_cli.main import main
from kez_core.keys import Signer
from kez_core.messaging import (
    InboxSecret,
    ReplayStore,
    create_message,
    open_envelope,
    routing_id,
    seal_message,
    text_body,
)
from kez_core.registry import Registry
from kez_transport_nostr.transport import NostrTransport
from nostr_transport_helpers import ctx, take


def test_kez_plugins_lists_the_nostr_transport_next_to_the_nostr_channel(capsys):
    assert main(["plugins", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    mine = [p for p in plugins.values() if p["distribution"] == "kez-transport-nostr"]
    assert len(mine) == 1 and mine[0]["state"] == "loaded"
    assert mine[0]["provides"] == {"transport": ["nostr"]}
    registry = Registry(env={"KEZ_STRICT_PLUGINS": "1"})
    assert isinstance(registry.transport("nostr"), NostrTransport)
    assert registry.channel("nostr").name == "nostr"  # one name, two extension points


def test_loading_the_plugin_imports_no_websockets():
    code = (
        "import sys\n"
        "from kez_core.registry import Registry\n"
        "Registry().transport('nostr')\n"
        "print('websockets' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_the_cli_reads_the_transport_options_apart_from_the_channel_relays():
    registry = Registry()
    flags = {o.flag: o.name for o in declared_options(registry)}
    assert flags["--transport-relay"] == "nostr_transport_relays"
    assert flags["--transport-since"] == "nostr_transport_since"
    assert flags["--relay"] == "nostr_relays"
    args = ["--transport-relay", "ws://a", "--transport-relay=ws://b", "--relay", "ws://proofs"]
    options = parse_channel_args(args, registry, env={})
    assert options["nostr_transport_relays"] == ("ws://a", "ws://b")
    assert options["nostr_relays"] == ("ws://proofs",)
    assert options["nostr_transport_since"] == "48h"
    env = {"KEZ_TRANSPORT_RELAYS": "ws://x, ws://y", "KEZ_TRANSPORT_SINCE": "7d"}
    options = parse_channel_args([], registry, env=env)
    assert options["nostr_transport_relays"] == ("ws://x", "ws://y")
    assert options["nostr_transport_since"] == "7d"
    assert parse_channel_args([], registry, env={})["nostr_transport_relays"] == ()


def test_a_real_message_travels_end_to_end(transport_relay, second_relay, tmp_path):
    alice, bob, inbox_secret = Signer.generate(), Signer.generate(), InboxSecret.generate()
    message = create_message(
        alice,
        sender_identity=alice.key_id,
        recipient=bob.key_id,
        inbox_key=inbox_secret.key_id,
        body=text_body("hello bob, over nostr"),
    )
    sealed = seal_message(message)
    route = routing_id(inbox_secret.key_id)
    context = ctx(transport_relay.url, second_relay.url)
    nostr = NostrTransport()

    async def run():
        async with nostr.subscribe(route, context) as inbox:
            await nostr.send(route, sealed.encode("ascii"), context)
            return await take(inbox)

    received = asyncio.run(run())
    assert received == sealed.encode("ascii")
    with ReplayStore(tmp_path / "replay.db") as replay:
        opened = open_envelope(received, [inbox_secret], identity=bob.key_id, replay=replay)
    assert opened.id == message.id and opened.body == {
        "kind": "text",
        "text": "hello bob, over nostr",
    }
    assert opened.sender == alice.key_id
