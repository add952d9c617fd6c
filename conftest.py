"""Suite-wide settings: strict plugin loading and a private KEZ_HOME per test."""

from __future__ import annotations

import os

import pytest

# CI must fail on a plugin that does not load, not skip it (DESIGN.md §1).
os.environ.setdefault("KEZ_STRICT_PLUGINS", "1")


@pytest.fixture(autouse=True)
def _private_kez_home(tmp_path_factory, monkeypatch):
    """Never touch the real user's keystore; no passphrase prompts."""
    home = tmp_path_factory.mktemp("kez-home")
    monkeypatch.setenv("KEZ_HOME", str(home))
    monkeypatch.delenv("KEZ_PASSPHRASE", raising=False)
    return home
