"""The typed Registry: conflicts, broken plugins, knobs, lazy listing (DESIGN.md §1, STYLE.md)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from importlib import metadata

import attrs
import pytest
from kez_core.builtins import bip340, ed25519, encodings
from kez_core.builtins.encodings import JsonEncoding
from kez_core.errors import RegistryError, UnknownNameError
from kez_core.registry import Registry
from kez_core.testing import provider

import kez_core
from kez_core import registry as registry_module


@attrs.frozen
class FakeEncoding:
    name: str = "fake"
    priority: int = 99

    def encode(self, obj):
        return "fake"

    def decode(self, text):
        return []

    def detect(self, text):
        return False


@attrs.frozen
class NoDecode:
    """Looks like an encoding but forgot `decode`."""

    name: str = "half"
    priority: int = 50

    def encode(self, obj):
        return ""

    def detect(self, text):
        return False


def make_plugin(name: str, **hooks) -> types.ModuleType:
    """A module object holding hook implementations, as an entry point would name."""
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, kez_core.hookimpl(function))
    return module


def builtin_plugins():
    return [ed25519, bip340, encodings]


def quiet_registry(plugins, env=None, entry_points=False):
    messages: list[str] = []
    reg = Registry(plugins=plugins, entry_points=entry_points, env=env or {}, warn=messages.append)
    return reg, messages


def info(reg: Registry, name: str):
    [found] = [p for p in reg.plugins() if p.name == name]
    return found


# -------------------------------------------------------------------- conflicts


def test_duplicate_names_name_both_plugins():
    first = make_plugin("plugin-alpha", kez_register_encodings=lambda: [FakeEncoding()])
    second = make_plugin("plugin-beta", kez_register_encodings=lambda: [FakeEncoding()])
    reg, _ = quiet_registry([first, second])
    with pytest.raises(RegistryError) as caught:
        reg.encoding("fake")
    message = caught.value.message
    assert "plugin-alpha" in message and "plugin-beta" in message
    assert "'fake'" in message
    assert "KEZ_DISABLE_PLUGINS" in (caught.value.hint or "")


def test_duplicate_of_a_builtin_name():
    shadow = make_plugin("shadow-json", kez_register_encodings=lambda: [JsonEncoding()])
    reg, _ = quiet_registry([*builtin_plugins(), shadow])
    with pytest.raises(RegistryError, match="shadow-json") as caught:
        reg.encoding("json")
    assert "kez_core.builtins.encodings" in caught.value.message


def test_duplicate_key_algorithm():
    twin = make_plugin("ed25519-twin", kez_register_key_algorithms=lambda: [ed25519.Ed25519()])
    reg, _ = quiet_registry([ed25519, twin])
    with pytest.raises(RegistryError, match="ed25519-twin"):
        reg.key_algorithm("ed25519")


def test_channel_alias_conflicting_with_a_name():
    @attrs.frozen
    class Chan:
        name: str
        aliases: tuple[str, ...] = ()
        options: tuple = ()
        proof_encoding: str = "compact"

        def normalize_handle(self, handle):
            return handle

        async def fetch(self, handle, ctx):
            raise NotImplementedError

        async def publish(self, handle, proof_text, ctx):
            raise NotImplementedError

    first = make_plugin("chan-a", kez_register_channels=lambda: [Chan("alpha", ("beta",))])
    second = make_plugin("chan-b", kez_register_channels=lambda: [Chan("beta")])
    reg, _ = quiet_registry([first, second])
    with pytest.raises(RegistryError, match="'beta'") as caught:
        reg.channel("alpha")
    assert "chan-a" in caught.value.message and "chan-b" in caught.value.message


# ---------------------------------------------------------------- broken plugins


def test_hook_that_raises_is_broken_and_the_rest_work():
    def explode():
        raise RuntimeError("boom")

    bad = make_plugin("bad-plugin", kez_register_encodings=explode)
    reg, messages = quiet_registry([*builtin_plugins(), bad])
    assert reg.encoding("json").name == "json"
    assert reg.key_algorithm("ed25519").name == "ed25519"
    broken = info(reg, "bad-plugin")
    assert broken.state == "broken"
    assert "RuntimeError" in broken.error and "boom" in broken.error
    assert any("bad-plugin" in m and "boom" in m for m in messages)
    assert info(reg, "kez_core.builtins.encodings").state == "loaded"


def test_strict_mode_makes_a_broken_plugin_fatal():
    def explode():
        raise RuntimeError("boom")

    bad = make_plugin("bad-plugin", kez_register_encodings=explode)
    reg, _ = quiet_registry([*builtin_plugins(), bad], env={"KEZ_STRICT_PLUGINS": "1"})
    with pytest.raises(RegistryError, match="bad-plugin.*boom") as caught:
        reg.encoding("json")
    assert caught.value.exit_code == 6


def test_object_missing_a_method_is_reported():
    half = make_plugin("half-plugin", kez_register_encodings=lambda: [NoDecode(), FakeEncoding()])
    reg, messages = quiet_registry([half])
    with pytest.raises(UnknownNameError):
        reg.encoding("half")
    broken = info(reg, "half-plugin")
    assert broken.state == "broken"
    assert "decode" in broken.error
    assert any("decode" in m for m in messages)


def test_object_without_a_name_is_reported():
    nameless = make_plugin("nameless", kez_register_encodings=lambda: [FakeEncoding(name="")])
    reg, _ = quiet_registry([nameless])
    reg.load()
    assert info(reg, "nameless").state == "broken"
    assert "name" in info(reg, "nameless").error


def test_hook_returning_a_non_iterable():
    odd = make_plugin("odd-plugin", kez_register_encodings=lambda: 42)
    reg, _ = quiet_registry([*builtin_plugins(), odd])
    assert reg.encoding("json")
    assert info(reg, "odd-plugin").state == "broken"
    assert "iterable" in info(reg, "odd-plugin").error


def test_misspelled_hook_marks_the_plugin_broken():
    typo = make_plugin("typo-plugin", kez_register_encodingz=lambda: [FakeEncoding()])
    reg, messages = quiet_registry([*builtin_plugins(), typo])
    assert reg.encoding("json")
    broken = info(reg, "typo-plugin")
    assert broken.state == "broken"
    assert "kez_register_encodingz" in broken.error and "misspelled" in broken.error
    with pytest.raises(UnknownNameError):
        reg.encoding("fake")
    assert any("kez_register_encodingz" in m for m in messages)


def test_misspelled_hook_on_a_class_instance():
    class Plugin:
        __name__ = "typo-object"

        @kez_core.hookimpl
        def kez_register_keyalgorithms(self):
            return []

    reg, _ = quiet_registry([Plugin()])
    reg.load()
    assert info(reg, "typo-object").state == "broken"


def test_misspelled_hook_is_fatal_when_strict():
    typo = make_plugin("typo-plugin", kez_register_encodingz=lambda: [FakeEncoding()])
    reg, _ = quiet_registry([typo], env={"KEZ_STRICT_PLUGINS": "yes"})
    with pytest.raises(RegistryError, match="kez_register_encodingz"):
        reg.load()


def test_hook_with_unknown_argument_is_broken():
    def wants_more(color):
        return []

    weird = make_plugin("weird-args", kez_register_encodings=wants_more)
    reg, _ = quiet_registry([*builtin_plugins(), weird])
    assert reg.encoding("json")
    assert info(reg, "weird-args").state == "broken"


def test_fewer_arguments_than_the_spec_is_fine():
    # kez_register_commands(cli): an implementation may take no arguments
    calls = []
    plugin = make_plugin("no-args", kez_register_commands=lambda: calls.append("called"))
    reg, _ = quiet_registry([plugin])
    reg.register_commands(object())
    assert calls == ["called"]
    assert info(reg, "no-args").state == "loaded"


def test_import_failure_is_broken_not_fatal(monkeypatch):
    real = metadata.entry_points

    def entry_points(group):
        found = list(real(group=group))
        found.append(metadata.EntryPoint(name="ghost", value="kez_no_such_module_xyz", group=group))
        return found

    monkeypatch.setattr(registry_module.metadata, "entry_points", entry_points)
    messages: list[str] = []
    reg = Registry(env={}, warn=messages.append)
    assert info(reg, "ghost").state == "not loaded"
    assert reg.encoding("json")
    ghost = info(reg, "ghost")
    assert ghost.state == "broken"
    assert "ModuleNotFoundError" in ghost.error
    assert any("ghost" in m for m in messages)
    strict = Registry(env={"KEZ_STRICT_PLUGINS": "1"}, warn=messages.append)
    with pytest.raises(RegistryError, match="ghost"):
        strict.load()


# ------------------------------------------------------------------- lookups


def test_unknown_name_lists_known_names():
    reg, _ = quiet_registry(builtin_plugins())
    with pytest.raises(UnknownNameError) as caught:
        reg.encoding("yaml")
    message = caught.value.message
    assert "'yaml'" in message
    for name in ("json", "compact", "markdown", "dns"):
        assert name in message
    with pytest.raises(UnknownNameError, match="ed25519, nostr"):
        reg.key_algorithm("rsa")
    with pytest.raises(UnknownNameError, match="known: none"):
        reg.channel("github")
    with pytest.raises(UnknownNameError, match="ed25519-sha512-jcs"):
        reg.key_algorithm_for_signature("rsa-sha1")


def test_encodings_in_priority_order():
    reg, _ = quiet_registry(builtin_plugins())
    assert [e.name for e in reg.encodings()] == ["json", "compact", "markdown", "dns"]
    assert {a.name for a in reg.key_algorithms()} == {"ed25519", "nostr"}
    assert reg.key_algorithm_for_signature("bip340-sha256-jcs").name == "nostr"


def test_provides_is_recorded():
    reg, _ = quiet_registry(builtin_plugins())
    reg.load()
    assert info(reg, "kez_core.builtins.encodings").provides == {
        "encoding": ["json", "compact", "markdown", "dns"]
    }
    assert info(reg, "kez_core.builtins.ed25519").provides == {"key_algorithm": ["ed25519"]}


def test_testing_provider_object():
    plugin = provider("my-provider", encodings=[FakeEncoding()])
    reg, _ = quiet_registry([plugin])
    assert reg.encoding("fake") == FakeEncoding()
    assert info(reg, "my-provider").state == "loaded"


def test_trace_logs_hook_calls(capsys):
    reg, _ = quiet_registry(builtin_plugins(), env={"KEZ_TRACE_PLUGINS": "1"})
    reg.load()
    err = capsys.readouterr().err
    assert "kez_register_encodings() -> plugin kez_core.builtins.encodings" in err


# ------------------------------------------------------------ real entry points


def test_real_entry_points_list_builtins_and_armor():
    reg = Registry(env={})
    names = {p.name: p for p in reg.plugins()}
    assert {"ed25519", "nostr", "encodings", "armor"} <= set(names)
    assert names["ed25519"].builtin and names["ed25519"].distribution == "kez-core"
    assert names["armor"].distribution == "kez-example" and not names["armor"].builtin
    assert all(p.state == "not loaded" for p in names.values())
    assert reg.encoding("armor").name == "armor"
    assert names["armor"].state == "loaded"


def test_disable_plugins_blocks_armor():
    reg = Registry(env={"KEZ_DISABLE_PLUGINS": "armor"}, warn=lambda m: None)
    assert info(reg, "armor").state == "disabled"
    assert reg.encoding("json")
    with pytest.raises(UnknownNameError, match="armor"):
        reg.encoding("armor")
    assert info(reg, "armor").state == "disabled"


def test_plugins_allow_list_leaves_armor_out():
    reg = Registry(env={"KEZ_PLUGINS": "ed25519, nostr,encodings"}, warn=lambda m: None)
    assert info(reg, "armor").state == "disabled"
    assert info(reg, "ed25519").state == "not loaded"
    with pytest.raises(UnknownNameError):
        reg.encoding("armor")
    assert reg.encoding("markdown")


def test_plugins_allow_list_of_armor_only():
    reg = Registry(env={"KEZ_PLUGINS": "armor"}, warn=lambda m: None)
    assert reg.encoding("armor")
    assert info(reg, "encodings").state == "disabled"
    with pytest.raises(UnknownNameError):
        reg.encoding("json")
    with pytest.raises(UnknownNameError):
        reg.key_algorithm("ed25519")


def test_listing_imports_no_plugin():
    script = textwrap.dedent(
        """
        import sys
        from kez_core.registry import Registry

        infos = Registry().plugins()
        names = sorted(p.name for p in infos)
        assert "armor" in names, names
        loaded = sorted(m for m in sys.modules if m.startswith(("kez_example", "kez_core.builtins")))
        print("LOADED", loaded)
        """
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("KEZ_")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout, result.stdout
    assert "kez_example.armor" not in result.stdout


def test_strict_failure_is_raised_again_not_half_loaded():
    class Bad:
        __name__ = "bad"

        @kez_core.hookimpl
        def kez_register_encodings(self):
            raise RuntimeError("boom")

    from kez_core.builtins import encodings

    reg = Registry(plugins=[encodings, Bad()], entry_points=False, env={"KEZ_STRICT_PLUGINS": "1"})
    for _ in range(2):
        with pytest.raises(RegistryError, match="boom"):
            reg.encoding("json")


def test_only_the_kinds_in_use_are_built():
    """A lookup runs the registration hooks of its own kind: `kez claim verify` builds no channel or transport."""
    calls: list[str] = []
    plugin = make_plugin(
        "kinds",
        kez_register_channels=lambda: calls.append("channels") or [],
        kez_register_transports=lambda: calls.append("transports") or [],
    )
    reg, _ = quiet_registry([*builtin_plugins(), plugin])
    assert reg.encoding("json") and reg.key_algorithm("ed25519")
    assert reg.encodings() and reg.key_algorithm_for_signature("ed25519-sha512-jcs")
    assert calls == []
    assert reg.channels() == [] and calls == ["channels"]
    reg.load()
    assert calls == ["channels", "transports"]  # each hook once
    reg.load()
    assert calls == ["channels", "transports"]
