"""Registration and options of the nostr transport (a real sealed message: the contract)."""

from __future__ import annotations

import json
import subprocess
import sys

from kez_cli.channel_options import declared_options, parse_channel_args
from kez_cli.main import main
from kez_core.registry import Registry
from kez_transport_nostr.transport import NostrTransport


def test_kez_plugins_lists_the_nostr_transport_next_to_the_nostr_channel(capsys):
    assert main(["plugins", "--load", "--json"]) == 0
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
    from kez_transport_nostr.options import DEFAULT_RELAYS

    defaults = parse_channel_args([], registry, env={})
    assert defaults["nostr_transport_relays"] == DEFAULT_RELAYS
    assert defaults["nostr_transport_rate"] == "5"
    assert flags["--nostr-rate"] == "nostr_transport_rate"
    assert (
        parse_channel_args(["--nostr-rate", "2"], registry, env={})["nostr_transport_rate"] == "2"
    )
    assert (
        parse_channel_args([], registry, env={"KEZ_NOSTR_RATE": "9"})["nostr_transport_rate"] == "9"
    )
