"""The ap channel passes the channel contract, registers under `ap` and `mastodon`, and imports light."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kez_core.registry import Registry
from kez_core.subjects import normalize_subject
from kez_core.protocols import ChannelContext
from kez_core.testing import ChannelContract
from kez_channel_activitypub import ActivityPubChannel, plugin
from kez_channel_activitypub._html import html_to_text


class TestActivityPubChannelContract(ChannelContract):
    valid_handles = (
        "alice@mastodon.social",
        "@Alice@Mastodon.Social",
        "bob_2@social.example.org",
        "Carol.D@host.example",
        "dave~x@xn--bcher-kva.example",
        "eve@Bücher.example",
    )
    invalid_handles = (
        "",
        "alice",
        "@alice",
        "alice@",
        "@mastodon.social",
        "al ice@host.example",
        "alice@localhost",
        "alice@host..example",
        "al!ce@host.example",
        "alice@-host.example",
    )

    @pytest.fixture
    def channel(self):
        return ActivityPubChannel()

    @pytest.fixture
    def unreachable_context(self, closed_port):
        return ChannelContext(options={"ap_base_url": f"http://127.0.0.1:{closed_port}"}, timeout=2)


def test_options():
    options = {o.name: o for o in ActivityPubChannel().options}
    assert set(options) == {"ap_base_url", "mastodon_token"}
    base, token = options["ap_base_url"], options["mastodon_token"]
    assert (base.flag, base.env, base.default, base.secret) == (
        "--ap-base-url",
        "KEZ_AP_BASE_URL",
        None,
        False,
    )
    assert (token.flag, token.env, token.default, token.secret) == (
        "--mastodon-token",
        "KEZ_MASTODON_TOKEN",
        None,
        True,
    )


def test_registry_finds_it_by_name_and_alias():
    registry = Registry(plugins=[plugin], entry_points=False, env={})
    channel = registry.channel("ap")
    assert isinstance(channel, ActivityPubChannel)
    assert registry.channel("mastodon") is channel
    assert normalize_subject("mastodon:@Alice@Host.Example", registry) == "ap:alice@host.example"
    assert normalize_subject("activitypub:alice@host.example", registry) == "ap:alice@host.example"


def test_installed_entry_point_provides_it():
    registry = Registry(env={"KEZ_PLUGINS": "ap"})
    assert isinstance(registry.channel("mastodon"), ActivityPubChannel)


def test_plugin_module_imports_no_network_sdk():
    code = (
        "import sys, kez_channel_activitypub.plugin as p;"
        "p.kez_register_channels()[0].normalize_handle('@A@b.example');"
        "print(sorted(m for m in ('httpx', 'httpcore', 'atproto', 'websockets', 'dns', 'starlette', 'uvicorn')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("plain", "plain"),
        ("<p>a</p><p>b</p>", "a\nb"),
        ("a<br>b<br />c", "a\nb\nc"),
        (
            '<a href="https://x.example/p"><span class="invisible">https://</span><span class="">x.example/p</span>'
            '<span class="invisible"></span></a>',
            "https://x.example/p",
        ),
        ("Tom &amp; Jerry &lt;3 &#x1F426; &apos;", "Tom & Jerry <3 \U0001f426 '"),
        ("<script>kez:z1:evil</script>ok", "ok"),
        ("<p>unclosed <b>bold", "unclosed bold"),
        ("", ""),
    ],
)
def test_html_to_text(html, text):
    assert html_to_text(html) == text
