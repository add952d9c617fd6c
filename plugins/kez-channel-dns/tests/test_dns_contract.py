"""The dns channel passes the channel contract, registers through its entry point, loads lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kez_core.protocols import Channel
from kez_core.registry import Registry
from kez_core.protocols import ChannelContext
from kez_core.testing import ChannelContract

from kez_channel_dns.channel import OPTIONS, DnsChannel


class TestDnsChannelContract(ChannelContract):
    valid_handles = (
        "example.org",
        "Example.ORG",
        "example.org.",
        " sub.example.co.uk ",
        "bücher.example",
        "xn--bcher-kva.example",
    )
    invalid_handles = (
        "",
        "localhost",
        "a b.org",
        "-bad.org",
        "exa_mple.org",
        "a..b.org",
        "example.org:53",
        "http://example.org",
        "*.example.org",
    )

    @pytest.fixture
    def channel(self):
        return DnsChannel()

    @pytest.fixture
    def unreachable_context(self, closed_port):
        return ChannelContext(options={"dns_server": f"127.0.0.1:{closed_port}"}, timeout=2)


def test_entry_point_registers_the_channel():
    registry = Registry(env={})
    [info] = [p for p in registry.plugins() if p.name == "dns" and not p.builtin]
    assert info.distribution == "kez-channel-dns"
    assert info.module == "kez_channel_dns.plugin"
    channel = registry.channel("dns")
    assert isinstance(channel, DnsChannel) and isinstance(channel, Channel)


def test_declared_options():
    by_name = {o.name: o for o in OPTIONS}
    assert set(by_name) == {
        "dns_server",
        "dns_update_server",
        "dns_zone",
        "dns_tsig_name",
        "dns_tsig_secret",
        "dns_tsig_algorithm",
    }
    for option in OPTIONS:
        assert option.flag == "--" + option.name.replace("_", "-")
        assert option.env == "KEZ_" + option.name.upper()
    assert [o.name for o in OPTIONS if o.secret] == ["dns_tsig_secret"]
    assert by_name["dns_tsig_algorithm"].default == "hmac-sha256"
    assert DnsChannel.proof_encoding == "dns"
    assert DnsChannel().options == OPTIONS


def test_plugin_module_does_not_import_dnspython():
    code = (
        "import sys, kez_channel_dns.plugin as p\n"
        "[c] = p.kez_register_channels()\n"
        "c.normalize_handle('Example.org')\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('dns', 'dnslib'))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
