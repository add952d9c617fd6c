"""`kez demo` finds its local servers through the `kez_demo_servers` hook (issue 16 §3).

The demo names no plugin: every built-in channel, transport and kez-server
offers its server through the hook, a plugin registered directly joins the
demo the same way, and no kez_cli module imports a plugin's `testing` module.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from kez_core.errors import RegistryError
from kez_core.plugin import DemoServer, DemoSetup, RunningDemo, hookimpl
from kez_core.registry import Registry, default_registry

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_PACKAGES = ("kez_channel_", "kez_transport_", "kez_server")


def test_every_built_in_plugin_offers_its_local_server():
    servers = default_registry().demo_servers()
    by_kind: dict[str, list[str]] = {}
    for server in servers:
        by_kind.setdefault(server.kind, []).append(server.name)
    assert by_kind["channel"] == ["dns", "github", "nostr", "bluesky", "ap"]  # the narration order
    assert by_kind["transport"] == ["nats", "nostr", "http"]
    assert by_kind["sig_server"] == ["kez-server"]


def test_the_demo_modules_import_no_plugin():
    found = []
    for path in sorted((ROOT / "kez_cli" / "src" / "kez_cli").rglob("*.py")):
        if (
            path.name == "profile.py"
        ):  # `--nostr-relay` publishes a kind 0 with the nostr plugin's relay client
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            found += [
                f"{path.name}:{node.lineno} {n}" for n in names if n.startswith(PLUGIN_PACKAGES)
            ]
    assert found == []


@contextlib.contextmanager
def _echo(setup: DemoSetup) -> Iterator[RunningDemo]:
    yield RunningDemo(
        f"echo for {setup.account}", options={"echo": True}, subject=f"echo:{setup.account}"
    )


class _EchoPlugin:
    @staticmethod
    @hookimpl
    def kez_demo_servers():
        return [DemoServer("echo", "channel", _echo, needs=("json",), order=5)]


class _EchoAgain:
    @staticmethod
    @hookimpl
    def kez_demo_servers():
        return [DemoServer("echo", "channel", _echo)]


class _NotAServer:
    @staticmethod
    @hookimpl
    def kez_demo_servers():
        return [{"name": "echo"}]


def test_a_plugin_joins_the_demo_through_the_hook():
    registry = Registry(plugins=[_EchoPlugin], entry_points=False)
    [server] = registry.demo_servers()
    assert server.missing_module() is None
    with server.start(DemoSetup(account="bob")) as running:
        assert running.subject == "echo:bob" and running.options == {"echo": True}


def test_the_same_demo_server_twice_is_an_error_and_a_wrong_result_breaks_its_plugin():
    with pytest.raises(RegistryError, match="two plugins offer the demo channel server 'echo'"):
        Registry(plugins=[_EchoPlugin, _EchoAgain], entry_points=False).demo_servers()
    registry = Registry(plugins=[_NotAServer], entry_points=False, env={}, warn=lambda _m: None)
    assert registry.demo_servers() == []
    assert any("not a kez_core.plugin.DemoServer" in w for w in registry.warnings)


def test_a_missing_module_is_named_before_starting():
    server = DemoServer("x", "channel", _echo, needs=("json", "no_such_module_kez"))
    assert server.missing_module() == "no_such_module_kez"
