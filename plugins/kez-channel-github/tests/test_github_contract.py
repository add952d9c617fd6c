"""The generic channel contract, plugin registration and import lightness."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kez_channel_github import GitHubChannel, plugin
from kez_core.registry import Registry
from kez_core.protocols import ChannelContext
from kez_core.testing import ChannelContract


class TestGitHubChannelContract(ChannelContract):
    valid_handles = ("alice", "@Alice", "ALICE", " bob-2 ", "a", "a" * 39, "x1-y2-z3")
    invalid_handles = (
        "",
        "@",
        "-alice",
        "alice-",
        "al--ice",
        "a" * 40,
        "al ice",
        "al_ice",
        "alice@host",
    )

    @pytest.fixture
    def channel(self):
        return GitHubChannel()

    @pytest.fixture
    def unreachable_context(self, closed_port):
        return ChannelContext(options={"github_api": f"http://127.0.0.1:{closed_port}"}, timeout=2)


def test_plugin_registers_the_channel():
    registry = Registry(plugins=[plugin], entry_points=False, env={})
    channel = registry.channel("github")
    assert isinstance(channel, GitHubChannel)
    assert channel.proof_encoding == "markdown"
    assert GitHubChannel.proof_encoding == "markdown"


def test_entry_point_is_declared():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="kez") if e.name == "github"]
    assert ep.value == "kez_channel_github.plugin"


def test_importing_the_plugin_loads_no_http_library():
    code = (
        "import sys\n"
        "import kez_channel_github.plugin as p\n"
        "p.kez_register_channels()[0].normalize_handle('Alice')\n"
        "heavy = {'httpx', 'httpcore', 'starlette', 'uvicorn', 'atproto', 'websockets', 'dns'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
