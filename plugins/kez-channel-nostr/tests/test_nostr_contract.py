"""The generic channel contract, registration and import cost of the nostr channel."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from kez_channel_nostr import plugin
from kez_channel_nostr.channel import DEFAULT_RELAYS, NostrChannel
from kez_core.builtins.bip340 import BIP340
from kez_core.nip19 import encode as nip19_encode
from kez_core.registry import Registry
from kez_core.protocols import ChannelContext
from kez_core.testing import ChannelContract

_SECRET = bytes.fromhex("b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfef")
_PUB = BIP340.public_from_secret(_SECRET)


class TestNostrChannelContract(ChannelContract):
    valid_handles = (
        _PUB.hex(),
        _PUB.hex().upper(),
        nip19_encode("npub", _PUB),
        f"  {_PUB.hex()} ",
    )
    invalid_handles = (
        "",
        "abc",
        "g" * 64,
        "0" * 64,  # not on the curve
        _PUB.hex()[:-1],
        "npub1xyz",
        nip19_encode("nsec", _SECRET),  # a secret is not a handle
        "alice@example.org",
    )

    @pytest.fixture
    def channel(self):
        return NostrChannel()

    @pytest.fixture
    def unreachable_context(self, closed_port):
        return ChannelContext(
            options={"nostr_relays": (f"ws://127.0.0.1:{closed_port}",)}, timeout=2
        )


def test_options_are_the_documented_ones():
    options = {o.name: o for o in NostrChannel().options}
    relays, secret = options["nostr_relays"], options["nostr_secret"]
    assert (relays.flag, relays.env, relays.multiple, relays.secret) == (
        "--relay",
        "KEZ_NOSTR_RELAYS",
        True,
        False,
    )
    assert (
        relays.default
        == DEFAULT_RELAYS
        == (
            "wss://relay.damus.io",
            "wss://nos.lol",
            "wss://relay.nostr.band",
        )
    )
    assert (secret.flag, secret.env, secret.secret, secret.default) == (
        "--nostr-secret",
        "KEZ_NOSTR_SECRET",
        True,
        None,
    )
    assert NostrChannel.proof_encoding == "compact"
    assert NostrChannel().name == "nostr" and tuple(NostrChannel().aliases) == ()


def test_plugin_module_registers_the_channel():
    [channel] = plugin.kez_register_channels()
    assert isinstance(channel, NostrChannel)
    registry = Registry(plugins=[plugin], entry_points=False, env={})
    assert isinstance(registry.channel("nostr"), NostrChannel)


def test_entry_point_is_declared():
    [ep] = [
        ep for ep in metadata.entry_points(group="kez") if ep.value == "kez_channel_nostr.plugin"
    ]
    assert ep.dist is not None and ep.dist.metadata["Name"] == "kez-channel-nostr"


def test_default_registry_finds_the_channel():
    from kez_core.registry import default_registry

    assert isinstance(default_registry().channel("nostr"), NostrChannel)


def test_importing_the_plugin_does_not_import_websockets():
    code = (
        "import sys, kez_channel_nostr.plugin, kez_channel_nostr.channel, kez_channel_nostr.errors\n"
        "heavy = [m for m in ('websockets', 'httpx', 'atproto', 'dns', 'nostr_sdk') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
