"""The bluesky channel passes the generic channel contract and registers through its entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kez_channel_bluesky.channel import BlueskyChannel
from kez_core.registry import default_registry
from kez_core.subjects import normalize_subject
from kez_core.protocols import ChannelContext
from kez_core.testing import ChannelContract


class TestBlueskyChannelContract(ChannelContract):
    valid_handles = (
        "alice.bsky.social",
        "@Alice.Bsky.Social",
        "example.org.",
        "xn--bcher-kva.example",
        "did:plc:ewvi7nxzyoun6zhxrhs64oiz",
        "did:web:example.com",
        "did:web:localhost%3a8080",
    )
    invalid_handles = (
        "",
        "alice",
        "-alice.test",
        "a b.test",
        "did:plc:short",
        "did:plc:EWVI7NXZYOUN6ZHXRHS64OIZ",
        "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
    )

    @pytest.fixture
    def channel(self):
        return BlueskyChannel()

    @pytest.fixture
    def unreachable_context(self, closed_port):
        dead = f"http://127.0.0.1:{closed_port}"
        return ChannelContext(
            options={"atproto_resolver": dead, "atproto_plc": dead, "atproto_pds": dead}, timeout=2
        )


def test_options_declared():
    options = {o.name: o for o in BlueskyChannel().options}
    assert options["atproto_resolver"].default == "https://bsky.social"
    assert options["atproto_plc"].flag == "--plc"
    assert options["atproto_plc"].env == "KEZ_ATPROTO_PLC"
    assert options["atproto_pds"].default is None
    assert options["bluesky_app_password"].secret
    assert not options["atproto_resolver"].secret
    assert BlueskyChannel().proof_encoding == "compact"


def test_registered_through_entry_point():
    registry = default_registry()
    channel = registry.channel("bluesky")
    assert isinstance(channel, BlueskyChannel)
    # `bsky` is an alias the plugin declares.
    assert normalize_subject("bsky:@Alice.Test", registry) == "bluesky:alice.test"


def test_plugin_module_is_light():
    code = (
        "import sys, kez_channel_bluesky.plugin as p\n"
        "p.kez_register_channels()\n"
        "heavy = {'httpx', 'atproto', 'atproto_client', 'starlette', 'uvicorn', 'pydantic'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
